//! `redis://`, `rediss://`, `redis+socket://` and `sentinel://`: kelp's
//! model on Redis, storing messages exactly as Kombu's Redis transport does
//! (see [`envelope`] and [`keys`]), so Python and Rust services share queues.
//!
//! Exchanges are emulated: bindings live in Kombu's binding sets, topic
//! bindings match AMQP-exactly (the routing rules the memory transport
//! uses), fanout goes over pub/sub (best-effort, as in Kombu: a consumer
//! that is not connected misses the message). Acks are emulated with
//! Kombu's `unacked` hash and `unacked_index` sorted set; a message not
//! acked within the visibility timeout is put back by any live consumer.
//! Unlike Kombu, a consumer moves a message atomically (LMOVE) into a
//! processing list of its own before recording it as unacked
//! (`reliable_fetch`, on by default), so a consumer killed at any instant
//! loses nothing: any live kelp consumer gives back a dead one's
//! processing lists. No script touches the messages: Redis's Lua hashes
//! every byte of every string it handles, which made a scripted fetch cost
//! several times a plain pop.

mod client;
mod envelope;
mod fanout;
mod fetch;
#[doc(hidden)] pub mod fuzzing;
mod keys;
mod publish;
mod queues;
mod restore;
mod route;
mod scripts;
mod shared;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use tokio::sync::{Notify, watch};

use client::{auth_refused, client_for, name_connection};
use fanout::{subscribe, subscribe_loop};
use fetch::fetch_loop;
use keys::{Keys, RedisOptions, kombu_topic_pattern};
use publish::publish_writer;
use shared::{ChannelInner, ChannelState, ConsumerEntry, FANOUT_TAG, OwnedTask, Shared, Unacked, lock, now_secs};

use crate::transport::api::{Capabilities, Confirm, Transport, TransportChannel};
use crate::transport::types::{BindArgs, CancelReason, ConnectOptions, ConsumeArgs, Delivery, DeliverySender, ExchangeDeclare, OutgoingMessage, QueueDeclare, QueueDeclareOk};
use crate::content::exchange::ExchangeKind;
use crate::error::reply_code::{NOT_ALLOWED, NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED};
use crate::url::{BrokerUrl, TransportKind};
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

/// Kombu's `health_check_interval`: the longest kelp goes without PINGing.
const HEALTH_CHECK: Duration = Duration::from_secs(25);
/// How long a connection's liveness key outlives its last refresh (done
/// five times as often): the time a killed consumer's taken but unrecorded
/// messages wait before a live one gives them back. A process that blocks
/// its runtime for longer is taken for dead, and its messages may come
/// twice (never zero times).
const ALIVE_TTL: Duration = Duration::from_secs(15);
/// How long a command may wait for its reply before the connection is
/// considered dead.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one Redis server (the master, for Sentinel URLs).
pub(crate) struct RedisTransport {
    shared: Arc<Shared>,
}

impl Transport for RedisTransport {
    type Channel = RedisChannel;

    async fn connect(url: &BrokerUrl, options: &ConnectOptions) -> Result<RedisTransport> {
        let redis_options = RedisOptions::parse(url, &options.transport_options)?;
        let timeout = options.connect_timeout;
        let client = client_for(url, &redis_options, timeout).await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connected = tokio::time::timeout(timeout, client.get_multiplexed_async_connection_with_config(&config)).await;
        let mut cmd = match connected {
            Err(_) => return Err(Error::timeout(format!("connecting to {url} took longer than {timeout:?}"))),
            Ok(Err(e)) if auth_refused(&e) => {
                return Err(Error::new(ErrorKind::Authentication, format!("{url} refused the credentials")).with_source(e));
            }
            Ok(Err(e)) => return Err(Error::connection(format!("cannot connect to {url}")).with_source(e)),
            Ok(Ok(conn)) => conn,
        };
        // A server that wants a password accepts the connection and refuses
        // the first command: ask one now, so connect() says so.
        if let Err(e) = redis::cmd("PING").query_async::<String>(&mut cmd).await {
            if auth_refused(&e) {
                return Err(Error::new(ErrorKind::Authentication, format!("{url} refused the credentials")).with_source(e));
            }
            return Err(Error::connection(format!("{url} did not answer a PING")).with_source(e));
        }
        // Redis names may not hold spaces.
        let client_name: Option<String> =
            options.connection_name.as_ref().map(|n| n.chars().map(|c| if c.is_whitespace() { '-' } else { c }).collect());
        if let Err(e) = name_connection(&mut cmd, client_name.as_deref()).await {
            return Err(Error::connection(format!("cannot name the connection to {url}")).with_source(e));
        }
        if url.transport() == TransportKind::Sentinel {
            // A Sentinel may name a master that has just been demoted.
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query_async(&mut cmd)
                .await
                .map_err(|e| Error::connection(format!("cannot ask {url}'s master for its role")).with_source(e))?;
            if !matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
                return Err(Error::connection(format!("the master Sentinel {url} named is not a master (yet)")));
            }
        }
        // The publish script goes by EVALSHA in pipelines: load it first.
        if let Err(e) = redis::cmd("SCRIPT").arg("LOAD").arg(scripts::PUBLISH_SOURCE).query_async::<String>(&mut cmd).await {
            return Err(Error::connection(format!("cannot load kelp's publish script into {url}")).with_source(e));
        }
        // PING at the heartbeat interval, at most Kombu's 25 s health check.
        let ping_every = options.heartbeat.unwrap_or(HEALTH_CHECK).min(HEALTH_CHECK);
        let (down, _) = watch::channel(false);
        let (writer, jobs) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client,
            cmd,
            keys: Keys::new(&redis_options),
            options: redis_options,
            connect_timeout: timeout,
            client_name,
            broker: url.to_string(),
            events: options.events.clone(),
            exchanges: Mutex::new(HashMap::new()),
            fanout_bindings: Mutex::new(HashMap::new()),
            expires: Mutex::new(HashMap::new()),
            auto_delete: Mutex::new(HashSet::new()),
            exclusive: Mutex::new(HashSet::new()),
            down,
            failure: Mutex::new(None),
            channels: Mutex::new(Vec::new()),
            writer,
            owner: crate::content::ids::uuid4(),
            alive_ttl: ALIVE_TTL,
            fetches: std::sync::atomic::AtomicU64::new(0),
        });
        let mut alive = redis::pipe();
        shared.refresh_alive(&mut alive);
        shared.pipe::<()>(&alive, "announcing the connection").await?;
        tokio::spawn(publish_writer(Arc::downgrade(&shared), jobs));
        tracing::debug!(broker = %shared.broker, "connected to Redis");
        tokio::spawn(health_check(Arc::downgrade(&shared), ping_every));
        Ok(RedisTransport { shared })
    }

    async fn open_channel(&self, _confirms: super::confirm::SharedConfirms) -> Result<RedisChannel> {
        self.shared.conn()?;
        let inner = Arc::new(ChannelInner {
            shared: self.shared.clone(),
            open: AtomicBool::new(true),
            closed_with: Mutex::new(None),
            state: Mutex::new(ChannelState::default()),
            wake: Arc::new(Notify::new()),
        });
        let mut channels = lock(&self.shared.channels);
        channels.retain(|c| c.strong_count() > 0);
        channels.push(Arc::downgrade(&inner));
        Ok(RedisChannel { inner })
    }

    fn closed(&self) -> impl std::future::Future<Output = Error> + Send + 'static {
        let shared = self.shared.clone();
        let mut down = self.shared.down.subscribe();
        async move {
            let _ = down.wait_for(|d| *d).await;
            shared.closed_error()
        }
    }

    fn is_open(&self) -> bool {
        self.shared.is_open()
    }

    async fn close(&self) -> Result<()> {
        let channels: Vec<_> = lock(&self.shared.channels).iter().filter_map(Weak::upgrade).collect();
        for channel in channels {
            channel.close().await;
        }
        let exclusive: Vec<String> = lock(&self.shared.exclusive).iter().cloned().collect();
        for queue in exclusive {
            let _ = self.shared.delete_queue(&queue).await;
        }
        // Anything a fetch still had on its way is given back by the next
        // sweep of any consumer, not an hour later.
        let alive = self.shared.keys.alive(&self.shared.owner);
        let _: Result<i64> = self.shared.query(redis::cmd("DEL").arg(alive), "closing").await;
        self.shared.fail(Error::closed(format!("the connection to {} was closed", self.shared.broker)));
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            publisher_confirms: true,
            topic: true,
            fanout: true,
            headers: false,
            priorities: true,
            strict_priorities: false,
            message_ttl: false,
            exchange_bindings: false,
            max_length: false,
            checks_exchanges: false,
        }
    }
}

impl Drop for RedisTransport {
    fn drop(&mut self) {
        self.shared.fail(Error::closed(format!("the connection to {} was dropped", self.shared.broker)));
    }
}

/// PING the server every `interval`; no answer within it means the server
/// is gone or frozen. While this connection has consumers it also sweeps
/// for messages whose visibility timeout passed (Kombu's
/// `restore_visible`), and keeps its own unacked deliveries visible-timeout
/// fresh, so a long handler's message is not handed to someone else while
/// it is still being worked on (Kombu redelivers those).
async fn health_check(shared: Weak<Shared>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(100));
    let (sweep_every, keepalive_every) = match shared.upgrade() {
        Some(s) => (s.options.unacked_restore_interval, (s.options.visibility_timeout / 3).max(Duration::from_millis(50))),
        None => return,
    };
    let alive_every = ALIVE_TTL / 5;
    let tick = interval.min(sweep_every).min(keepalive_every).min(alive_every);
    let start = tokio::time::Instant::now();
    let (mut last_ping, mut last_sweep, mut last_keepalive, mut last_alive) = (start, start, start, start);
    loop {
        let mut down = match shared.upgrade() {
            Some(s) => s.down.subscribe(),
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = down.wait_for(|d| *d) => return,
        }
        let Some(shared) = shared.upgrade() else { return };
        if !shared.is_open() {
            return;
        }
        if last_ping.elapsed() >= interval {
            last_ping = tokio::time::Instant::now();
            let mut conn = shared.cmd.clone();
            let ping = tokio::time::timeout(interval, redis::cmd("PING").query_async::<String>(&mut conn)).await;
            match ping {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    let _ = shared.error(e, "checking the connection");
                    if shared.is_open() {
                        shared.fail(Error::connection(format!("{} stopped answering", shared.broker)));
                    }
                    return;
                }
                Err(_) => {
                    shared.fail(Error::new(
                        ErrorKind::Timeout,
                        format!("{} did not answer a PING within {interval:?} (frozen or unreachable)", shared.broker),
                    ));
                    return;
                }
            }
        }
        if last_alive.elapsed() >= alive_every {
            last_alive = tokio::time::Instant::now();
            let mut alive = redis::pipe();
            shared.refresh_alive(&mut alive);
            // A failure here is the PING's to notice.
            let _: Result<()> = shared.pipe(&alive, "saying this connection is alive").await;
        }
        let channels: Vec<Arc<ChannelInner>> = lock(&shared.channels).iter().filter_map(Weak::upgrade).collect();
        if last_keepalive.elapsed() >= keepalive_every {
            last_keepalive = tokio::time::Instant::now();
            let tags: Vec<String> = channels
                .iter()
                .flat_map(|c| {
                    lock(&c.state)
                        .unacked
                        .values()
                        .filter(|u| !u.tag.starts_with(FANOUT_TAG))
                        .map(|u| u.tag.clone())
                        .collect::<Vec<_>>()
                })
                .collect();
            if !tags.is_empty() {
                let now = now_secs();
                let mut zadd = redis::cmd("ZADD");
                zadd.arg(shared.keys.unacked_index()).arg("XX");
                for tag in &tags {
                    zadd.arg(now).arg(tag);
                }
                let _: Result<i64> = shared.query(&zadd, "refreshing unacked deliveries").await;
            }
        }
        let consuming = channels.iter().any(|c| !lock(&c.state).consumers.is_empty());
        if consuming && last_sweep.elapsed() >= sweep_every {
            last_sweep = tokio::time::Instant::now();
            let sweeping = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = sweeping.sweep_processing().await {
                    tracing::warn!(error = %e, "the sweep of dead consumers' processing lists failed");
                }
                if let Err(e) = sweeping.restore_visible().await {
                    tracing::warn!(error = %e, "the unacked sweep failed");
                }
            });
        }
    }
}

/// A channel on a Redis connection: its consumers, prefetch and unacked
/// deliveries.
#[derive(Clone)]
pub(crate) struct RedisChannel {
    inner: Arc<ChannelInner>,
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

    async fn close(&self) {
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
        let kind = self.shared().exchange_kind(&exchange).await?;
        let pattern = match kind {
            Some(ExchangeKind::Topic) => kombu_topic_pattern(&key),
            _ => String::new(),
        };
        Ok((Keys::member(&key, &pattern, &queue), matches!(kind, Some(ExchangeKind::Fanout))))
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
        let (member, fanout) = self.bind_member(&args).await?;
        let shared = self.shared();
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(shared.keys.binding(&args.source)).arg(&member).ignore();
        pipe.cmd("SADD").arg(shared.keys.binding_permanent(&args.source)).arg(&member).ignore();
        shared.pipe::<()>(&pipe, "binding a queue").await?;
        if fanout {
            let mut fanout = lock(&shared.fanout_bindings);
            let exchanges = fanout.entry(args.destination.to_owned()).or_default();
            if !exchanges.iter().any(|e| *e == args.source) {
                exchanges.push(args.source.to_owned());
            }
        }
        Ok(())
    }

    async fn queue_unbind(&self, args: &BindArgs) -> Result<()> {
        self.inner.check_open()?;
        let (member, fanout) = self.bind_member(&args).await?;
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
        // Every write is answered by Redis before the publish returns.
        self.inner.check_open()
    }

    async fn publish(&self, message: OutgoingMessage) -> Result<Confirm> {
        self.inner.check_open()?;
        let shared = self.inner.shared.clone();
        let plan = shared.plan_publish(&message).await?;
        let sending = shared.send_publish(&message, plan);
        // The writer sends it (with whatever else is queued, in one
        // pipeline); the confirmation is its answer.
        Ok(Confirm::Pending(Box::pin(async move {
            let routed = sending.await?;
            shared.returned_if_unroutable(&message, routed)
        })))
    }

    fn resend(&self, unsent: Vec<(u64, OutgoingMessage)>) -> Result<()> {
        self.inner.check_open()?;
        let shared = self.inner.shared.clone();
        // Publishes are confirmed synchronously, so nothing is normally left
        // over; publish whatever is handed in, in order.
        tokio::spawn(async move {
            for (_, message) in unsent {
                if let Err(e) = shared.publish(&message).await {
                    tracing::warn!(error = %e, "re-publishing after a reconnect failed");
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
        let Some(popped) = fetched.pop() else { return Ok(None) };
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
