//! The channel: [`RedisChannel`], kelp's `TransportChannel` on Redis
//! (declarations, bindings, publish, consume, get, settling), and how a
//! channel closes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::fanout::{subscribe, subscribe_loop};
use super::fetch::fetch_loop;
use super::keys::{Keys, kombu_topic_pattern};
use super::shared::{ChannelInner, ConsumerEntry, FANOUT_TAG, OwnedTask, Settle, Shared, Unacked, lock};
use crate::transport::api::{Confirm, TransportChannel};
use crate::transport::confirm::{self, PendingConfirm};
use crate::transport::types::{BindArgs, CancelReason, ConsumeArgs, Delivery, DeliverySender, ExchangeDeclare, OutgoingMessage, QueueDeclare, QueueDeclareOk};
use crate::content::exchange::ExchangeKind;
use crate::error::reply_code::{NOT_ALLOWED, NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED};
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

/// A channel on a Redis connection: its consumers, prefetch and unacked
/// deliveries.
#[derive(Clone)]
pub(crate) struct RedisChannel {
    pub(super) inner: Arc<ChannelInner>,
}

impl ChannelInner {
    /// A channel error closes the channel, as on AMQP brokers.
    async fn fail<T>(&self, code: u16, text: String) -> Result<T> {
        *lock(&self.closed_with) = Some((code, text.clone()));
        self.shutdown(Some(CancelReason::ChannelClosed(code, text.clone()))).await;
        Err(Error::channel_closed(code, text))
    }

    /// Close: stop, then give back what was not acked (front of the line,
    /// as Kombu's restore at close), and drop auto-delete queues.
    async fn shutdown(&self, reason: Option<CancelReason>) {
        let consumed: Vec<String> = lock(&self.state).consumers.iter().map(|c| c.queue.clone()).collect();
        let unacked = self.stop(reason);
        if self.shared.is_open() {
            if let Err(e) = self.flush_acks().await {
                tracing::warn!(error = %e, "acks not written at close; the visibility timeout will redeliver those messages");
            }
            self.requeue(unacked, false).await;
            for queue in consumed {
                self.maybe_auto_delete(&queue).await;
            }
        }
    }

    /// The confirmation of this channel's publish with tag `wire`.
    fn confirmation(&self, wire: u64) -> Settle {
        Settle { confirms: self.confirms.clone(), owner: self.owner, wire }
    }

    /// Too many publishes wait for Redis's answer: wait for room, up to the
    /// publish deadline, then fail rather than grow without bound.
    async fn wait_for_room(&self) -> Result<()> {
        let most = self.shared.max_unconfirmed;
        let deadline = tokio::time::Instant::now() + self.shared.publish_wait;
        loop {
            let room = {
                let mut confirms = confirm::lock(&self.confirms);
                if confirms.waiting() < most {
                    return Ok(());
                }
                confirms.room()
            };
            let notified = room.notified();
            if confirm::lock(&self.confirms).waiting() < most {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::new(
                    ErrorKind::LimitExceeded,
                    format!("{most} publishes on this channel wait for Redis's answer and none came in {:?}", self.shared.publish_wait),
                ));
            }
            self.check_open()?;
        }
    }

    pub(super) async fn close(&self) {
        if self.open.load(Ordering::Acquire) {
            self.shutdown(None).await;
        }
    }

    /// Settle deliveries: `None` acks, `Some(requeue)` rejects.
    async fn settle(&self, delivery_tag: u64, multiple: bool, reject: Option<bool>) -> Result<()> {
        self.check_open()?;
        let settled: Option<Vec<Unacked>> = {
            let mut state = lock(&self.state);
            if multiple {
                let rest = state.unacked.split_off(&(delivery_tag.saturating_add(1)));
                let done = std::mem::replace(&mut state.unacked, rest);
                Some(done.into_values().collect())
            } else {
                match state.unacked.remove(&delivery_tag) {
                    Some(u) => Some(vec![u]),
                    None if delivery_tag == 0 => Some(Vec::new()),
                    None => None,
                }
            }
        };
        let Some(settled) = settled else {
            return self.fail(PRECONDITION_FAILED, format!("PRECONDITION_FAILED - unknown delivery tag {delivery_tag}")).await;
        };
        if settled.is_empty() {
            return Ok(());
        }
        match reject {
            Some(true) => self.requeue(settled, true).await,
            _ => {
                // Like basic.ack, an ack is not answered: its records go
                // with the next fetch (or now, when nothing fetches).
                let flush_now = {
                    let mut state = lock(&self.state);
                    state.pending_acks.extend(settled.into_iter().map(|u| u.tag).filter(|t| !t.starts_with(FANOUT_TAG)));
                    !state.fetching
                };
                if flush_now {
                    self.flush_acks().await?;
                }
            }
        }
        self.wake.notify_one();
        Ok(())
    }
}

impl RedisChannel {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Start the fetcher if not running, and wake it (consumers changed).
    fn start_fetching(&self) {
        let mut state = lock(&self.inner.state);
        if !state.fetching {
            state.fetching = true;
            tokio::spawn(fetch_loop(Arc::downgrade(&self.inner)));
        }
        drop(state);
        self.inner.wake.notify_one();
    }

    /// The binding-set member for `args` and whether the exchange is fanout.
    async fn bind_member(&self, args: &BindArgs) -> Result<(String, bool)> {
        let (queue, exchange, key) = (args.destination.as_str(), args.source.as_str(), args.routing_key.as_str());
        let kind = self.shared().exchange_kind(exchange).await?;
        let pattern = match kind {
            Some(ExchangeKind::Topic) => kombu_topic_pattern(key),
            _ => String::new(),
        };
        Ok((Keys::member(key, &pattern, queue), matches!(kind, Some(ExchangeKind::Fanout))))
    }
}

/// Queue arguments Redis has nothing to honour them with.
const UNSUPPORTED_QUEUE_ARGUMENTS: &[&str] = &["x-message-ttl", "x-max-length", "x-max-length-bytes"];

impl TransportChannel for RedisChannel {
    fn is_open(&self) -> bool {
        self.inner.check_open().is_ok()
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await;
        Ok(())
    }

    async fn exchange_declare(&self, args: &ExchangeDeclare) -> Result<()> {
        self.inner.check_open()?;
        if matches!(args.kind, ExchangeKind::Headers) || matches!(args.kind, ExchangeKind::Custom(_)) {
            return Err(Error::unsupported(format!(
                "the Redis transport has no {} exchanges (direct, topic and fanout only, as Kombu's)",
                args.kind
            )));
        }
        let shared = self.shared();
        let name = args.name.to_owned();
        if args.passive {
            if shared.exchange_kind(&name).await?.is_some() {
                return Ok(());
            }
            let exists: bool = shared.query(redis::cmd("EXISTS").arg(shared.keys.binding(&name)), "looking up an exchange").await?;
            if exists {
                return Ok(());
            }
            return self.inner.fail(NOT_FOUND, format!("NOT_FOUND - no exchange '{name}'")).await;
        }
        let spec = format!("type={} durable={} auto_delete={}", args.kind, args.durable, args.auto_delete);
        let mut pipe = redis::pipe();
        pipe.cmd("HSETNX").arg(shared.keys.exchange_records()).arg(&name).arg(&spec).ignore();
        pipe.cmd("HGET").arg(shared.keys.exchange_records()).arg(&name);
        let (recorded,): (Option<String>,) = shared.pipe(&pipe, "declaring an exchange").await?;
        if let Some(recorded) = recorded.filter(|r| *r != spec) {
            return self
                .inner
                .fail(
                    PRECONDITION_FAILED,
                    format!("PRECONDITION_FAILED - inequivalent arguments for exchange '{name}': declared with {spec}, exists with {recorded}"),
                )
                .await;
        }
        lock(&shared.exchanges).insert(name, args.kind.clone());
        Ok(())
    }

    async fn exchange_delete(&self, name: &str, _if_unused: bool) -> Result<()> {
        self.inner.check_open()?;
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.shared().keys.binding(name)).ignore();
        pipe.cmd("DEL").arg(self.shared().keys.binding_permanent(name)).ignore();
        pipe.cmd("HDEL").arg(self.shared().keys.exchange_records()).arg(name).ignore();
        self.shared().pipe::<()>(&pipe, "deleting an exchange").await?;
        lock(&self.shared().exchanges).remove(name);
        for bindings in lock(&self.shared().fanout_bindings).values_mut() {
            bindings.retain(|e| e != name);
        }
        Ok(())
    }

    async fn exchange_bind(&self, _args: &BindArgs) -> Result<()> {
        Err(Error::unsupported("the Redis transport has no exchange-to-exchange bindings (nor has Kombu's)"))
    }

    async fn exchange_unbind(&self, _args: &BindArgs) -> Result<()> {
        Err(Error::unsupported("the Redis transport has no exchange-to-exchange bindings (nor has Kombu's)"))
    }

    async fn queue_declare(&self, args: &QueueDeclare) -> Result<QueueDeclareOk> {
        self.inner.check_open()?;
        let shared = self.shared();
        let name = if args.name.is_empty() { format!("amq.gen-{}", crate::content::ids::uuid4()) } else { args.name.to_owned() };
        if args.passive {
            if !shared.queue_exists(&name).await? {
                return self.inner.fail(NOT_FOUND, format!("NOT_FOUND - no queue '{name}' in vhost '{}'", shared.keys.bucket("", 0))).await;
            }
        } else {
            if let Some(argument) = UNSUPPORTED_QUEUE_ARGUMENTS.iter().find(|a| args.arguments.contains_key(**a)) {
                return Err(Error::unsupported(format!(
                    "the Redis transport cannot honour the queue argument {argument} (Kombu's Redis transport \
                     ignores it; kelp refuses rather than drop it silently)"
                )));
            }
            if lock(&shared.exclusive).contains(&name) {
                // Declared exclusive by this connection: fine to redeclare.
            } else if args.exclusive && shared.queue_exists(&name).await? {
                return self
                    .inner
                    .fail(RESOURCE_LOCKED, format!("RESOURCE_LOCKED - cannot obtain exclusive access to queue '{name}'"))
                    .await;
            }
            let spec = format!(
                "durable={} auto_delete={} arguments={}",
                args.durable,
                args.auto_delete,
                serde_json::to_string(&args.arguments).unwrap_or_default()
            );
            let mut pipe = redis::pipe();
            pipe.cmd("HSETNX").arg(shared.keys.queue_records()).arg(&name).arg(&spec).ignore();
            pipe.cmd("HGET").arg(shared.keys.queue_records()).arg(&name);
            let (recorded,): (Option<String>,) = shared.pipe(&pipe, "declaring a queue").await?;
            if let Some(recorded) = recorded.filter(|r| *r != spec) {
                return self
                    .inner
                    .fail(
                        PRECONDITION_FAILED,
                        format!("PRECONDITION_FAILED - inequivalent arguments for queue '{name}': declared with {spec}, exists with {recorded}"),
                    )
                    .await;
            }
            match args.arguments.get("x-expires").and_then(crate::content::value::Value::as_i64) {
                Some(ms) if ms > 0 => {
                    lock(&shared.expires).insert(name.clone(), ms as u64);
                    let mut pipe = redis::pipe();
                    for key in shared.keys.buckets(&name) {
                        pipe.cmd("PEXPIRE").arg(key).arg(ms).ignore();
                    }
                    shared.pipe::<()>(&pipe, "setting queue expiry").await?;
                }
                _ => {
                    lock(&shared.expires).remove(&name);
                }
            }
            if args.auto_delete {
                lock(&shared.auto_delete).insert(name.clone());
            }
            if args.exclusive {
                lock(&shared.exclusive).insert(name.clone());
            }
        }
        let message_count = shared.queue_size(&name).await?;
        let consumer_count = lock(&shared.channels)
            .iter()
            .filter_map(Weak::upgrade)
            .map(|c| lock(&c.state).consumers.iter().filter(|e| e.queue == name).count() as u32)
            .sum();
        Ok(QueueDeclareOk { name, message_count, consumer_count })
    }

    async fn queue_bind(&self, args: &BindArgs) -> Result<()> {
        self.inner.check_open()?;
        let (member, fanout) = self.bind_member(args).await?;
        let shared = self.shared();
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(shared.keys.binding(&args.source)).arg(&member).ignore();
        pipe.cmd("SADD").arg(shared.keys.binding_permanent(&args.source)).arg(&member).ignore();
        shared.pipe::<()>(&pipe, "binding a queue").await?;
        if fanout {
            let mut fanout = lock(&shared.fanout_bindings);
            let exchanges = fanout.entry(args.destination.to_owned()).or_default();
            if !exchanges.contains(&args.source) {
                exchanges.push(args.source.to_owned());
            }
        }
        Ok(())
    }

    async fn queue_unbind(&self, args: &BindArgs) -> Result<()> {
        self.inner.check_open()?;
        let (member, fanout) = self.bind_member(args).await?;
        let shared = self.shared();
        let mut pipe = redis::pipe();
        pipe.cmd("SREM").arg(shared.keys.binding(&args.source)).arg(&member).ignore();
        pipe.cmd("SREM").arg(shared.keys.binding_permanent(&args.source)).arg(&member).ignore();
        shared.pipe::<()>(&pipe, "unbinding a queue").await?;
        if fanout && let Some(exchanges) = lock(&shared.fanout_bindings).get_mut(&args.destination) {
            exchanges.retain(|e| *e != args.source);
        }
        Ok(())
    }

    async fn queue_purge(&self, name: &str) -> Result<u32> {
        self.inner.check_open()?;
        let shared = self.shared();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in shared.keys.buckets(name) {
            pipe.cmd("LLEN").arg(&key);
            pipe.cmd("DEL").arg(&key).ignore();
        }
        let sizes: Vec<u64> = shared.pipe(&pipe, "purging a queue").await?;
        Ok(u32::try_from(sizes.iter().sum::<u64>()).unwrap_or(u32::MAX))
    }

    async fn queue_delete(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u32> {
        self.inner.check_open()?;
        let shared = self.shared();
        if if_empty && shared.queue_size(name).await? > 0 {
            return self.inner.fail(PRECONDITION_FAILED, format!("PRECONDITION_FAILED - queue '{name}' not empty")).await;
        }
        if if_unused {
            let used = lock(&shared.channels)
                .iter()
                .filter_map(Weak::upgrade)
                .any(|c| lock(&c.state).consumers.iter().any(|e| e.queue == name));
            if used {
                return self.inner.fail(PRECONDITION_FAILED, format!("PRECONDITION_FAILED - queue '{name}' in use")).await;
            }
        }
        shared.delete_queue(name).await
    }

    async fn qos(&self, prefetch_count: u16, _global: bool) -> Result<()> {
        self.inner.check_open()?;
        lock(&self.inner.state).prefetch = u32::from(prefetch_count);
        self.inner.wake.notify_one();
        Ok(())
    }

    async fn confirm_select(&self) -> Result<()> {
        // Every publish is confirmed by Redis's answer to its write (see
        // `publish`): there is no mode to turn on.
        self.inner.check_open()
    }

    async fn publish(&self, message: OutgoingMessage) -> Result<Confirm> {
        self.inner.check_open()?;
        self.inner.wait_for_room().await?;
        let shared = self.inner.shared.clone();
        let plan = shared.plan_publish(&message).await?;
        let (ticket, wire) = {
            let mut confirms = confirm::lock(&self.inner.confirms);
            // A newer channel took over (this one's connection is gone):
            // nothing was sent; publish there instead.
            let Some(ticket) = confirms.track(self.inner.owner, message.clone()) else {
                return Err(Error::connection("the channel was replaced after a reconnect"));
            };
            (ticket, confirms.wire_of(ticket).unwrap_or(0))
        };
        // The writer sends it (with whatever else is queued, in one
        // pipeline); Redis's answer confirms it.
        shared.send_publish(&message, plan, self.inner.confirmation(wire));
        Ok(Confirm::Tracked(PendingConfirm::new(self.inner.confirms.clone(), ticket)))
    }

    fn resend(&self, unsent: Vec<(u64, OutgoingMessage)>) -> Result<()> {
        self.inner.check_open()?;
        // Called after a reconnect with the publishes whose write was never
        // answered: each gets its tag on this channel now, in order, and is
        // published again; the answer settles the original publish.
        let resent: Vec<(u64, OutgoingMessage)> = {
            let mut confirms = confirm::lock(&self.inner.confirms);
            unsent
                .into_iter()
                .map(|(ticket, message)| {
                    confirms.resent(ticket);
                    (confirms.wire_of(ticket).unwrap_or(0), message)
                })
                .collect()
        };
        let inner = self.inner.clone();
        tokio::spawn(async move {
            for (wire, message) in resent {
                match inner.shared.plan_publish(&message).await {
                    Ok(plan) => inner.shared.send_publish(&message, plan, inner.confirmation(wire)),
                    Err(e) => inner.confirmation(wire).answer(&inner.shared, Err(e)),
                }
            }
        });
        Ok(())
    }

    async fn consume(&self, args: ConsumeArgs, sink: DeliverySender) -> Result<SharedStr> {
        self.inner.check_open()?;
        let shared = self.shared();
        if !lock(&shared.exclusive).contains(&args.queue) && !shared.queue_exists(&args.queue).await? && !lock(&shared.fanout_bindings).contains_key(&args.queue) {
            return self.inner.fail(NOT_FOUND, format!("NOT_FOUND - no queue '{}'", args.queue)).await;
        }
        let reused = lock(&self.inner.state).consumers.iter().any(|c| c.tag == args.consumer_tag);
        if reused {
            return self
                .inner
                .fail(NOT_ALLOWED, format!("NOT_ALLOWED - attempt to reuse consumer tag '{}'", args.consumer_tag))
                .await;
        }
        // Subscribe before returning, so what is published after consume()
        // returns reaches this consumer.
        let fanout = lock(&shared.fanout_bindings).get(&args.queue).cloned().unwrap_or_default();
        let subscription = if fanout.is_empty() {
            None
        } else {
            let patterns: Vec<String> = fanout.iter().flat_map(|e| shared.keys.fanout_patterns(e)).collect();
            let stream = subscribe(shared, &patterns).await?;
            let weak = Arc::downgrade(&self.inner);
            Some(OwnedTask(tokio::spawn(subscribe_loop(weak, args.consumer_tag.clone(), stream))))
        };
        lock(&self.inner.state).consumers.push(ConsumerEntry {
            tag: args.consumer_tag.clone(),
            queue: args.queue.clone(),
            no_ack: args.no_ack,
            sink,
            epoch: args.epoch,
            _subscription: subscription,
        });
        self.start_fetching();
        Ok(args.consumer_tag)
    }

    async fn cancel(&self, consumer_tag: &str) -> Result<()> {
        self.inner.check_open()?;
        let queue = {
            let mut state = lock(&self.inner.state);
            let position = state.consumers.iter().position(|c| c.tag.as_str() == consumer_tag);
            position.map(|i| state.consumers.remove(i).queue)
        };
        self.inner.wake.notify_one();
        if let Some(queue) = queue {
            self.inner.maybe_auto_delete(&queue).await;
        }
        Ok(())
    }

    async fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Delivery>> {
        self.inner.check_open()?;
        let keys = self.shared().keys.fetch_order(&[queue]);
        let taken = self.inner.take(&keys, 1, !no_ack, &[], false).await?;
        let mut fetched = self.inner.finish(taken).await?;
        let Some(popped) = fetched.pop() else {
            self.shared().sweep_when_idle().await;
            return Ok(None);
        };
        let mut state = lock(&self.inner.state);
        let mut delivery = self.inner.delivery(&mut state, popped, None);
        delivery.info.consumer_tag = None;
        Ok(Some(delivery))
    }

    async fn ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.inner.settle(delivery_tag, multiple, None).await
    }

    async fn nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.inner.settle(delivery_tag, multiple, Some(requeue)).await
    }

    async fn reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.inner.settle(delivery_tag, false, Some(requeue)).await
    }

    async fn recover(&self, requeue: bool) -> Result<()> {
        self.inner.check_open()?;
        if !requeue {
            return Err(Error::unsupported("basic.recover without requeue is not supported (nor by RabbitMQ)"));
        }
        let unacked: Vec<Unacked> = std::mem::take(&mut lock(&self.inner.state).unacked).into_values().collect();
        self.inner.requeue(unacked, false).await;
        self.inner.wake.notify_one();
        Ok(())
    }
}
