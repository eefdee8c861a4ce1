//! What a connection's channels and tasks share: the connection's state
//! ([`Shared`]: its command connection, what was declared on it, whether
//! it is down) and each channel's ([`ChannelInner`]: consumers, prefetch,
//! unacked deliveries), with what the rest of the transport builds on
//! (queries that take the connection down on a connection error, stopping
//! a channel).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, watch};

use super::client::{auth_refused, name_connection};
use super::keys::{Keys, RedisOptions};
use super::scripts;
use crate::transport::confirm::{self, SharedConfirms};
use crate::transport::types::{CancelReason, ConsumerEvent, DeliverySender};
use crate::content::exchange::ExchangeKind;
use crate::event::{Event, Events};
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

/// At most this many messages are taken by one fetch (measured with a
/// prefetch of 1,000: 250 consumed 4 KiB messages ~10% faster than 100,
/// which made more round trips; 500 was slower, a refill waiting for half
/// the prefetch to be acked). A batch of 4 KiB messages is ~1.4 MB in one
/// transaction.
pub(super) const FETCH_BATCH: usize = 250;
/// The local tag of a fanout delivery (never stored in Redis).
pub(super) const FANOUT_TAG: &str = "kelp-fanout-";

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub(super) struct Shared {
    pub(super) client: redis::Client,
    pub(super) cmd: MultiplexedConnection,
    pub(super) keys: Keys,
    pub(super) options: RedisOptions,
    pub(super) connect_timeout: Duration,
    /// `connection_name`, given to the command and consumer connections
    /// (CLIENT SETNAME; the pub/sub ones stay unnamed).
    pub(super) client_name: Option<String>,
    pub(super) broker: String,
    pub(super) events: Events,
    /// Exchange types declared on this connection. Redis stores none (as in
    /// Kombu); an exchange declared elsewhere routes as direct, or as topic
    /// when its bindings carry topic patterns.
    pub(super) exchanges: Mutex<HashMap<String, ExchangeKind>>,
    /// queue → the fanout exchanges it is bound to, for subscribing its
    /// consumers.
    pub(super) fanout_bindings: Mutex<HashMap<String, Vec<String>>>,
    /// queue → `x-expires` in milliseconds, refreshed on every put and get.
    pub(super) expires: Mutex<HashMap<String, u64>>,
    pub(super) auto_delete: Mutex<HashSet<String>>,
    pub(super) exclusive: Mutex<HashSet<String>>,
    /// `true` once the connection is lost or closed.
    pub(super) down: watch::Sender<bool>,
    pub(super) failure: Mutex<Option<Error>>,
    pub(super) channels: Mutex<Vec<Weak<ChannelInner>>>,
    /// Publishes on their way to Redis, in order (see [`publish_writer`](super::publish::publish_writer)).
    pub(super) writer: tokio::sync::mpsc::UnboundedSender<PublishJob>,
    /// This connection's id in the names of its processing lists and its
    /// liveness key.
    pub(super) owner: String,
    /// How long the liveness key outlives its last refresh.
    pub(super) alive_ttl: Duration,
    /// Numbers this connection's fetches (each takes into lists of its own).
    pub(super) fetches: std::sync::atomic::AtomicU64,
    /// Keep unconfirmed publishes when the connection is lost, to publish
    /// them again on the next one.
    pub(super) keep_unconfirmed: bool,
    /// At most this many unconfirmed publishes per channel; more wait, up
    /// to `publish_wait`.
    pub(super) max_unconfirmed: usize,
    pub(super) publish_wait: Duration,
    /// When a `get` that found nothing last swept for what dead consumers
    /// left (a poller has no fetch loop sweeping for it).
    pub(super) idle_sweep: Mutex<Option<std::time::Instant>>,
}

/// A publish for the writer: its commands and the confirmation its answer
/// settles.
pub(super) struct PublishJob {
    pub(super) cmds: Vec<redis::Cmd>,
    pub(super) settle: Settle,
}

/// Which tracked publish an answer confirms: its channel's confirms, the
/// channel, and its delivery tag there.
pub(super) struct Settle {
    pub(super) confirms: SharedConfirms,
    pub(super) owner: u64,
    pub(super) wire: u64,
}

impl Settle {
    /// Resolve with Redis's answer: `Ok(routed)`, or why it failed. A lost
    /// connection leaves it to be published again on the next one (when
    /// unconfirmed publishes are kept): whether this write was applied is
    /// not known.
    pub(super) fn answer(self, shared: &Shared, answer: Result<bool>) {
        if let Err(e) = &answer
            && shared.keep_unconfirmed
            && e.kind() == ErrorKind::Connection
        {
            return;
        }
        confirm::lock(&self.confirms).settle_wire(self.owner, self.wire, |message| match answer {
            Ok(routed) => shared.returned_if_unroutable(message, routed),
            Err(e) => Err(e),
        });
    }
}

impl Shared {
    pub(super) fn is_open(&self) -> bool {
        !*self.down.borrow()
    }

    pub(super) fn closed_error(&self) -> Error {
        match &*lock(&self.failure) {
            Some(e) => e.clone_for_waiters(),
            None => Error::closed(format!("the connection to {} is closed", self.broker)),
        }
    }

    /// Stop with `error` (the first one wins) and tell every consumer.
    pub(super) fn fail(&self, error: Error) {
        {
            let mut failure = lock(&self.failure);
            if failure.is_some() {
                return;
            }
            if error.kind() != ErrorKind::Closed {
                tracing::warn!(broker = %self.broker, %error, "lost the Redis connection");
                self.events.emit(Event::ConnectionLost { broker: self.broker.clone(), reason: error.to_string() });
            }
            *failure = Some(error);
        }
        self.down.send_replace(true);
        let clean = lock(&self.failure).as_ref().is_some_and(|e| e.kind() == ErrorKind::Closed);
        let channels: Vec<_> = lock(&self.channels).drain(..).filter_map(|c| c.upgrade()).collect();
        for channel in channels {
            channel.stop(if clean { None } else { Some(CancelReason::ConnectionLost) });
        }
    }

    /// Map a Redis error; a connection-level one takes the connection down.
    pub(super) fn error(&self, e: redis::RedisError, doing: &str) -> Error {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal() {
            let error = Error::connection(format!("lost the connection to {} while {doing}", self.broker)).with_source(e);
            self.fail(error.clone_for_waiters());
            return error;
        }
        // A demoted master (after a Sentinel failover), a server still
        // loading its data or one that lost its master: the next server of
        // the failover list (or the Sentinel's new master) is the cure.
        if matches!(e.code(), Some("READONLY" | "LOADING" | "MASTERDOWN")) {
            let error = Error::connection(format!("{} cannot serve writes now ({e}) while {doing}", self.broker));
            self.fail(error.clone_for_waiters());
            return error;
        }
        if auth_refused(&e) {
            return Error::new(ErrorKind::Authentication, format!("{} refused the credentials", self.broker)).with_source(e);
        }
        Error::new(ErrorKind::Protocol, format!("Redis at {} failed while {doing}: {e}", self.broker))
    }

    pub(super) fn conn(&self) -> Result<MultiplexedConnection> {
        if self.is_open() {
            Ok(self.cmd.clone())
        } else {
            Err(self.closed_error())
        }
    }

    pub(super) async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, doing: &str) -> Result<T> {
        let mut conn = self.conn()?;
        cmd.query_async(&mut conn).await.map_err(|e| self.error(e, doing))
    }

    pub(super) async fn pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline, doing: &str) -> Result<T> {
        let mut conn = self.conn()?;
        pipe.query_async(&mut conn).await.map_err(|e| self.error(e, doing))
    }

    pub(super) async fn script<T: redis::FromRedisValue>(&self, invocation: &redis::ScriptInvocation<'_>, doing: &str) -> Result<T> {
        let mut conn = self.conn()?;
        invocation.invoke_async(&mut conn).await.map_err(|e| self.error(e, doing))
    }

    /// Keep this connection's liveness key (see [`Keys::alive`]).
    pub(super) fn refresh_alive(&self, pipe: &mut redis::Pipeline) {
        let ttl = u64::try_from(self.alive_ttl.as_millis()).unwrap_or(u64::MAX);
        pipe.cmd("EVALSHA")
            .arg(scripts::ALIVE.get_hash())
            .arg(2)
            .arg(self.keys.alive(&self.owner))
            .arg(self.keys.gone(&self.owner))
            .arg(ttl)
            .ignore();
    }

    /// A connection of its own, with no reply timeout, for blocking commands.
    pub(super) async fn blocking_connection(&self) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error(e, "opening a consumer connection"))?;
        name_connection(&mut conn, self.client_name.as_deref()).await.map_err(|e| self.error(e, "naming a connection"))?;
        Ok(conn)
    }
}

pub(super) struct ChannelInner {
    pub(super) shared: Arc<Shared>,
    pub(super) open: AtomicBool,
    pub(super) closed_with: Mutex<Option<(u16, String)>>,
    pub(super) state: Mutex<ChannelState>,
    /// Consumers changed, or acks made room under the prefetch limit.
    pub(super) wake: Arc<Notify>,
    /// This channel's publishes, until Redis answered them (they outlive
    /// the channel: see [`Settle::answer`]).
    pub(super) confirms: SharedConfirms,
    /// This channel's id in `confirms`.
    pub(super) owner: u64,
}

#[derive(Default)]
pub(super) struct ChannelState {
    pub(super) next_tag: u64,
    pub(super) prefetch: u32,
    pub(super) unacked: BTreeMap<u64, Unacked>,
    pub(super) consumers: Vec<ConsumerEntry>,
    /// Round-robin position among consumers of one queue.
    pub(super) turn: usize,
    pub(super) fetching: bool,
    /// Messages taken by the fetch loop and not handed out yet.
    pub(super) taken: usize,
    /// A fetch or the recording of a batch failed: the fetch loop waits
    /// until then.
    pub(super) retry_at: Option<tokio::time::Instant>,
    /// Kombu tags acked here whose records are not yet removed from Redis:
    /// the fetch loop's next fetch sends them with its commands (one round
    /// trip settles a batch), or `flush_acks` when no fetch loop runs.
    pub(super) pending_acks: Vec<String>,
}

/// A delivery not yet settled: enough to ack it or put it back.
pub(super) struct Unacked {
    /// Kombu's delivery tag, the key of the unacked hash.
    pub(super) tag: String,
    /// The list it was popped from; empty for a fanout delivery.
    pub(super) source: Arc<str>,
    pub(super) raw: Bytes,
}

pub(super) struct ConsumerEntry {
    pub(super) tag: SharedStr,
    pub(super) queue: String,
    pub(super) no_ack: bool,
    pub(super) sink: DeliverySender,
    pub(super) epoch: u64,
    /// The fanout subscription of a consumer of a fanout-bound queue.
    pub(super) _subscription: Option<OwnedTask>,
}

/// A task aborted when its owner goes away.
pub(super) struct OwnedTask(pub(super) tokio::task::JoinHandle<()>);

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ChannelInner {
    pub(super) fn check_open(&self) -> Result<()> {
        if !self.shared.is_open() {
            return Err(self.shared.closed_error());
        }
        if self.open.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*lock(&self.closed_with) {
            Some((code, text)) => Err(Error::channel_closed(*code, text.clone())),
            None => Err(Error::closed("the channel is closed")),
        }
    }

    /// Stop the channel and tell its consumers (with `reason`). Its
    /// unconfirmed publishes wait for the next connection when this one was
    /// lost (and they are kept); otherwise their fate is unknown.
    pub(super) fn stop(&self, reason: Option<CancelReason>) -> Vec<Unacked> {
        self.open.store(false, Ordering::Release);
        {
            let mut confirms = confirm::lock(&self.confirms);
            if matches!(reason, Some(CancelReason::ConnectionLost)) && self.shared.keep_unconfirmed {
                confirms.detach_from(self.owner);
            } else {
                let error = if self.shared.is_open() { Error::closed("the channel is closed") } else { self.shared.closed_error() };
                let unknown = confirms.fail_wired(self.owner, &error);
                if !unknown.is_empty() {
                    tracing::warn!(count = unknown.len(), "publishes not answered before the channel closed: their fate is unknown");
                }
            }
        }
        // The fetch loop is not aborted: a pop it has in flight records its
        // messages in Redis, and only the loop can put them back (its
        // dispatch finds no consumer); it ends at its next check.
        let mut state = lock(&self.state);
        let consumers = std::mem::take(&mut state.consumers);
        state.fetching = false;
        let unacked = std::mem::take(&mut state.unacked).into_values().collect();
        drop(state);
        if let Some(reason) = reason {
            for consumer in consumers {
                let _ = consumer.sink.send(ConsumerEvent::Cancelled(consumer.tag, reason.clone()));
            }
        }
        self.wake.notify_waiters();
        unacked
    }
}
