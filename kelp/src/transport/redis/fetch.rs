//! Consuming: a channel's fetch loop takes messages (reliable fetch: LMOVE
//! into processing lists of its own), records them as unacked in one
//! transaction, and hands them out to its consumers; acks ride with the
//! next fetch.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;

use super::envelope;
use super::keys::{self, Keys};
use super::shared::{ChannelInner, ChannelState, FETCH_BATCH, Shared, Unacked, lock, now_secs};
use crate::transport::types::{ConsumerEvent, Delivery};
use crate::content::message::{Content, DeliveryInfo};
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

/// How long a consumer waits before fetching again after Redis refused a
/// fetch on a live connection.
const FETCH_RETRY: Duration = Duration::from_secs(1);

impl ChannelInner {
    /// Remove the records of acked deliveries from Redis now.
    pub(super) async fn flush_acks(&self) -> Result<()> {
        let tags = std::mem::take(&mut lock(&self.state).pending_acks);
        self.write_acks(&tags).await
    }

    async fn write_acks(&self, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        ack_commands(&mut pipe, &self.shared.keys, &self.shared.owner, tags);
        self.shared.pipe::<()>(&pipe, "acknowledging").await
    }

    /// Turn a fetched payload into a delivery for `consumer_tag`.
    pub(super) fn delivery(&self, state: &mut ChannelState, popped: Popped, consumer: Option<(&SharedStr, bool, u64)>) -> Delivery {
        let Popped { source, raw, tag, decoded } = popped;
        state.next_tag += 1;
        let delivery_tag = state.next_tag;
        let decoded = match decoded {
            Some(envelope) => Ok(envelope),
            None => envelope::decode(&raw),
        };
        let (content, exchange, routing_key, redelivered) = match decoded {
            Ok(e) => (e.content, e.exchange, e.routing_key, e.redelivered),
            Err(error) => {
                // Not an envelope: hand over the bytes as they are, so the
                // application sees them (and can reject them) instead of
                // losing them.
                tracing::warn!(%error, source = &*source, "a message in Redis is not a Kombu envelope; delivered as raw bytes");
                (Content { properties: Default::default(), body: raw.clone() }, SharedStr::default(), SharedStr::default(), false)
            }
        };
        let no_ack = consumer.is_some_and(|(_, no_ack, _)| no_ack);
        if !no_ack && !tag.is_empty() {
            state.unacked.insert(delivery_tag, Unacked { tag, source, raw });
        }
        Delivery {
            info: DeliveryInfo {
                exchange,
                routing_key,
                redelivered,
                consumer_tag: consumer.map(|(t, _, _)| t.clone()),
                delivery_tag,
            },
            content: Arc::new(content),
            epoch: consumer.map(|(_, _, e)| e).unwrap_or(0),
        }
    }

    /// Take up to `max` messages from `keys` (in that order of preference),
    /// after writing the acks that waited. With `record`, each is moved
    /// atomically into a processing list of this fetch's own (LMOVE), to
    /// be recorded by [`ChannelInner::finish`] before it is handed out;
    /// without, it is popped. With `probe`, the lists' lengths are asked
    /// first (the last fetch found them drained: taking blindly would send
    /// `max` commands to come back empty).
    pub(super) async fn take(&self, keys: &[String], max: usize, record: bool, acks: &[String], probe: bool) -> Result<Taken> {
        let shared = &self.shared;
        let fetch = format!("{}.{}", shared.owner, shared.fetches.fetch_add(1, Ordering::Relaxed));
        let registry = shared.keys.processing_registry();
        let mut fetched: Fetched = Vec::new();
        let mut lists: Vec<String> = Vec::new();
        // Round one takes from the first list and asks the lengths of the
        // others; round two, only when the first ran short, takes from
        // those by their lengths. Usually one round trip. A probe asks
        // every length in round one and takes nothing.
        let mut plan: Vec<(usize, usize)> =
            if max > 0 && !keys.is_empty() && !probe { vec![(0, max)] } else { Vec::new() };
        let lengths_from = if probe { 0 } else { 1 };
        let mut first_round = true;
        loop {
            let mut pipe = redis::pipe();
            if first_round {
                ack_commands(&mut pipe, &shared.keys, &shared.owner, acks);
            }
            if record && !plan.is_empty() {
                shared.refresh_alive(&mut pipe);
            }
            for &(i, count) in &plan {
                let source = &keys[i];
                if record {
                    // Registered before anything is moved into it, so a
                    // sweeper always knows where it came from.
                    let list = shared.keys.processing(&fetch, source);
                    pipe.cmd("HSET").arg(&registry).arg(&list).arg(format!("{}{}{source}", shared.owner, keys::SEP)).ignore();
                    // Built once and cloned: a clone is two exact-size
                    // allocations, building grows its buffers several times.
                    let mut lmove = redis::Cmd::with_capacity(5, source.len() + list.len() + 19);
                    lmove.arg("LMOVE").arg(source).arg(&list).arg("RIGHT").arg("LEFT");
                    for _ in 0..count {
                        pipe.add_command(lmove.clone());
                    }
                    lists.push(list);
                } else {
                    pipe.cmd("RPOP").arg(source).arg(count);
                }
            }
            let ask_lengths = first_round && max > 0 && keys.len() > lengths_from;
            if ask_lengths {
                for key in &keys[lengths_from..] {
                    pipe.cmd("LLEN").arg(key);
                }
            }
            if pipe.is_empty() {
                break;
            }
            let replies: Vec<redis::Value> = match shared.pipe(&pipe, "fetching messages").await {
                Ok(replies) => replies,
                Err(e) => {
                    self.give_back_after_failure(&lists).await;
                    return Err(e);
                }
            };
            let mut replies = replies.into_iter();
            for &(i, count) in &plan {
                // One name shared by the batch, not one copy per message.
                let source: Arc<str> = Arc::from(keys[i].as_str());
                let mut take = |value: redis::Value| {
                    if let redis::Value::BulkString(raw) = value {
                        fetched.push(Popped { source: source.clone(), raw: Bytes::from(raw), tag: String::new(), decoded: None });
                    }
                };
                if record {
                    replies.by_ref().take(count).for_each(&mut take);
                } else if let Some(redis::Value::Array(values)) = replies.next() {
                    values.into_iter().for_each(&mut take);
                }
            }
            let remaining = max.saturating_sub(fetched.len());
            plan = Vec::new();
            if ask_lengths && remaining > 0 {
                let mut left = remaining;
                for (offset, length) in replies.enumerate() {
                    let length = match length {
                        redis::Value::Int(n) => usize::try_from(n).unwrap_or(0),
                        _ => 0,
                    };
                    let count = length.min(left);
                    if count > 0 {
                        plan.push((offset + lengths_from, count));
                        left -= count;
                    }
                }
            }
            first_round = false;
            if plan.is_empty() {
                break;
            }
        }
        if fetched.is_empty() && !lists.is_empty() {
            // Another consumer was quicker: nothing to record, the lists
            // are empty, only their registry entries go.
            let mut forget = redis::pipe();
            forget.cmd("HDEL").arg(&registry).arg(&lists).ignore();
            shared.pipe::<()>(&forget, "forgetting empty processing lists").await?;
            lists.clear();
        }
        Ok(Taken { fetched, lists })
    }

    /// After a fetch failed on a live connection (Redis refused a command,
    /// out of memory say), put back what it had taken into its processing
    /// lists. On a lost connection the sweep of a live consumer does.
    async fn give_back_after_failure(&self, lists: &[String]) {
        if lists.is_empty() || !self.shared.is_open() {
            return;
        }
        if let Err(e) = self.shared.give_back(lists).await {
            tracing::error!(error = %e, "taken messages could not be given back; they go back once this connection is seen dead");
        }
    }

    /// Make taken messages ready to hand out: record them (when taken into
    /// processing lists) and refresh their queues' expiry.
    pub(super) async fn finish(&self, taken: Taken) -> Result<Fetched> {
        let Taken { mut fetched, lists } = taken;
        if !lists.is_empty() {
            self.record_taken(&mut fetched, &lists).await?;
        }
        if !fetched.is_empty() {
            self.refresh_expiry(fetched.iter().map(|p| self.shared.keys.queue_of(&p.source))).await;
        }
        Ok(fetched)
    }

    /// Record taken messages in Kombu's unacked hash (`tag -> [payload,
    /// exchange, routing_key]`) and index, and empty the processing lists
    /// they were taken into, in one transaction: each message is always in
    /// exactly one of its list, a processing list, or the unacked hash.
    async fn record_taken(&self, fetched: &mut Fetched, lists: &[String]) -> Result<()> {
        let shared = &self.shared;
        let now = format!("{:.6}", now_secs());
        // Decode first, to size the commands: growing a megabyte-long
        // HSET by doubling copied it over and over.
        let mut record_bytes = 0;
        for popped in fetched.iter_mut() {
            let mut decoded = envelope::decode(&popped.raw).ok();
            // The delivery reads everything else of the envelope, not its tag.
            popped.tag = match decoded.as_mut().map(|d| std::mem::take(&mut d.tag)) {
                Some(tag) if !tag.is_empty() => tag,
                _ => format!("kelp-{}", crate::content::ids::uuid4()),
            };
            let names = decoded.as_ref().map_or(0, |d| d.exchange.len() + d.routing_key.len());
            record_bytes += popped.raw.len() + popped.tag.len() + names + 16;
            popped.decoded = decoded;
        }
        let args = 2 + 2 * fetched.len();
        let mut index = redis::Cmd::with_capacity(args, fetched.len() * 64);
        index.arg("ZADD").arg(shared.keys.unacked_index());
        let mut records = redis::Cmd::with_capacity(args, record_bytes + 32);
        records.arg("HSET").arg(shared.keys.unacked());
        let held_key = shared.keys.held(&shared.owner);
        let mut held = redis::Cmd::with_capacity(args, fetched.iter().map(|p| p.tag.len() + p.source.len() + 24).sum::<usize>() + 32);
        held.arg("HSET").arg(&held_key);
        for popped in fetched.iter() {
            held.arg(&popped.tag).arg(format!("{now}{}{}", keys::SEP, &*popped.source));
            match &popped.decoded {
                Some(d) if d.json_text => {
                    records.arg(&popped.tag).arg(KombuRecord { payload: &popped.raw, exchange: &d.exchange, routing_key: &d.routing_key })
                }
                // Not JSON as it stands: Kombu could not read the record back.
                _ => records.arg(&popped.tag).arg(kombu_unacked_record(&popped.raw)),
            };
            index.arg(&now).arg(&popped.tag);
        }
        let mut pipe = redis::pipe();
        // Each command's own answer: a transaction is not rolled back, so
        // when a record fails (a key of the wrong type), the lists are
        // emptied all the same.
        pipe.atomic().ignore_errors();
        if !fetched.is_empty() {
            pipe.add_command(index);
            pipe.add_command(records);
            pipe.cmd("SADD").arg(shared.keys.holders()).arg(&shared.owner).ignore();
            pipe.add_command(held);
        }
        pipe.cmd("DEL").arg(lists).ignore();
        pipe.cmd("HDEL").arg(shared.keys.processing_registry()).arg(lists).ignore();
        let answers: Vec<redis::RedisResult<redis::Value>> = shared.pipe(&pipe, "recording deliveries").await?;
        let Some(refused) = answers.into_iter().find_map(|a| a.err()) else { return Ok(()) };
        // The messages are only here now: back to the front of their
        // lists, oldest consumed first, and no half-written record left.
        let mut put_back = redis::pipe();
        put_back.ignore_errors();
        for popped in fetched.iter().rev() {
            put_back.cmd("RPUSH").arg(&*popped.source).arg(&popped.raw[..]).ignore();
        }
        let tags: Vec<&str> = fetched.iter().map(|p| p.tag.as_str()).collect();
        put_back.cmd("ZREM").arg(shared.keys.unacked_index()).arg(&tags).ignore();
        put_back.cmd("HDEL").arg(shared.keys.unacked()).arg(&tags).ignore();
        put_back.cmd("HDEL").arg(&held_key).arg(&tags).ignore();
        shared.pipe::<()>(&put_back, "putting back messages Redis would not record").await?;
        Err(Error::new(ErrorKind::Protocol, format!("Redis at {} refused to record deliveries: {refused}", shared.broker)))
    }

    async fn refresh_expiry<'a>(&self, queues: impl Iterator<Item = &'a str>) {
        let mut pipe = redis::pipe();
        let mut any = false;
        {
            let expires = lock(&self.shared.expires);
            if expires.is_empty() {
                return;
            }
            let mut seen = HashSet::new();
            for queue in queues {
                if let Some(ms) = expires.get(queue)
                    && seen.insert(queue)
                {
                    for key in self.shared.keys.buckets(queue) {
                        pipe.cmd("PEXPIRE").arg(key).arg(*ms).ignore();
                        any = true;
                    }
                }
            }
        }
        if any {
            let _ = self.shared.pipe::<()>(&pipe, "refreshing queue expiry").await;
        }
    }

    /// Hand fetched messages to the consumers of their queues (round robin
    /// among a queue's consumers); one whose consumer went away goes back.
    async fn dispatch(&self, fetched: Fetched) {
        let mut orphans = Vec::new();
        {
            let mut state = lock(&self.state);
            for popped in fetched {
                // Round robin without collecting the queue's consumers (this
                // runs per message).
                let queue = self.shared.keys.queue_of(&popped.source);
                let count = state.consumers.iter().filter(|c| c.queue == queue).count();
                if count == 0 {
                    orphans.push(Unacked { tag: popped.tag, source: popped.source, raw: popped.raw });
                    continue;
                }
                state.turn = state.turn.wrapping_add(1);
                let nth = state.turn % count;
                let Some(c) = state.consumers.iter().filter(|c| c.queue == queue).nth(nth) else {
                    orphans.push(Unacked { tag: popped.tag, source: popped.source, raw: popped.raw });
                    continue;
                };
                let (ctag, no_ack, epoch, sink) = (c.tag.clone(), c.no_ack, c.epoch, c.sink.clone());
                if no_ack && !popped.tag.is_empty() {
                    // Recorded by a fetch shared with acking consumers.
                    orphans.push(Unacked { tag: popped.tag.clone(), source: Arc::from(""), raw: Bytes::new() });
                }
                let delivery = self.delivery(&mut state, popped, Some((&ctag, no_ack, epoch)));
                // A consumer dropped meanwhile: the message goes back.
                if let Err(returned) = sink.send(ConsumerEvent::Delivery(delivery))
                    && let ConsumerEvent::Delivery(d) = returned.0
                    && let Some(u) = state.unacked.remove(&d.info.delivery_tag)
                {
                    orphans.push(u);
                }
            }
        }
        let (forget, back): (Vec<_>, Vec<_>) = orphans.into_iter().partition(|u| u.source.is_empty());
        if !forget.is_empty() {
            lock(&self.state).pending_acks.extend(forget.into_iter().map(|u| u.tag));
        }
        self.requeue(back, false).await;
    }

    /// What the fetcher should do next: the keys in Kombu's order, how
    /// many to pop (0: only write the pending acks), whether to record them
    /// as unacked, and the acks to write. `None`: nothing until woken.
    fn plan(&self) -> Option<FetchPlan> {
        let mut state = lock(&self.state);
        let mut queues: Vec<&str> = Vec::new();
        for c in &state.consumers {
            if !queues.contains(&c.queue.as_str()) {
                queues.push(&c.queue);
            }
        }
        let record = state.consumers.iter().any(|c| !c.no_ack);
        let max = if queues.is_empty() {
            0
        } else if state.prefetch == 0 || !record {
            FETCH_BATCH
        } else {
            // Refill in batches: waiting for room for several messages
            // costs one fetch per batch instead of one per ack.
            let prefetch = state.prefetch as usize;
            let held = state.unacked.len() + state.taken;
            let room = prefetch.saturating_sub(held);
            // A quarter of the prefetch: room for a batch being taken, one
            // being recorded and handed out, and the ones being worked on.
            let threshold = (prefetch / 4).clamp(1, FETCH_BATCH);
            if room >= threshold || held == 0 { room.min(FETCH_BATCH) } else { 0 }
        };
        if max == 0 && state.pending_acks.is_empty() {
            return None;
        }
        // Rotate so a busy queue does not starve the others (Kombu's fair cycle).
        if !queues.is_empty() {
            let shift = state.turn % queues.len();
            queues.rotate_left(shift);
        }
        let keys = if max == 0 { Vec::new() } else { self.shared.keys.fetch_order(&queues) };
        let acks = std::mem::take(&mut state.pending_acks);
        Some(FetchPlan { keys, max, record, acks })
    }
}

/// A message taken from a list.
pub(super) struct Popped {
    /// The list (queue bucket) it came from.
    pub(super) source: Arc<str>,
    pub(super) raw: Bytes,
    /// Kombu's delivery tag; empty when not recorded.
    pub(super) tag: String,
    /// The envelope, when recording it already decoded it.
    pub(super) decoded: Option<envelope::Envelope>,
}

pub(super) type Fetched = Vec<Popped>;

/// What one fetch took: the messages and the processing lists they wait in
/// until recorded (none when popped without recording).
pub(super) struct Taken {
    fetched: Fetched,
    lists: Vec<String>,
}

/// Remove the unacked records of acked deliveries.
fn ack_commands(pipe: &mut redis::Pipeline, keys: &Keys, owner: &str, tags: &[String]) {
    for chunk in tags.chunks(1000) {
        pipe.cmd("HDEL").arg(keys.unacked()).arg(chunk).ignore();
        pipe.cmd("ZREM").arg(keys.unacked_index()).arg(chunk).ignore();
        pipe.cmd("HDEL").arg(keys.held(owner)).arg(chunk).ignore();
    }
}

/// One step of the fetch loop (see [`ChannelInner::plan`]).
struct FetchPlan {
    keys: Vec<String>,
    max: usize,
    record: bool,
    acks: Vec<String>,
}

/// The consumer loop of one channel: pop what is there, and when nothing
/// is, wait on the first queue's list without removing anything (BLMOVE of
/// a list onto itself) or until the polling interval passes.
pub(super) async fn fetch_loop(channel: Weak<ChannelInner>) {
    let mut waiter: Option<MultiplexedConnection> = None;
    // Recording and handing out one batch overlaps with taking the next:
    // Redis moves messages while this process decodes the previous ones.
    let (batches, to_hand_out) = tokio::sync::mpsc::channel(1);
    tokio::spawn(hand_out(to_hand_out));
    // Look before taking while the queues seem drained.
    let mut probe = true;
    loop {
        let Some(inner) = channel.upgrade() else { return };
        if inner.check_open().is_err() {
            return;
        }
        let retry_at = lock(&inner.state).retry_at.take();
        if let Some(at) = retry_at {
            drop(inner);
            tokio::time::sleep_until(at).await;
            continue;
        }
        let Some(FetchPlan { keys, max: room, record, acks }) = inner.plan() else {
            let wake = inner.wake.clone();
            drop(inner);
            wake.notified().await;
            continue;
        };
        if room == 0 || inner.shared.options.reliable_fetch || !record {
            let taking = inner.take(&keys, room, record, &acks, probe).await;
            if let Ok(taken) = &taking {
                probe = taken.fetched.len() < room;
            }
            match taking {
                Ok(taken) if !taken.fetched.is_empty() => {
                    lock(&inner.state).taken += taken.fetched.len();
                    // Holding the channel: what was taken is handed out (or
                    // given back) even if the application lets go of it.
                    if batches.send((inner, taken)).await.is_err() {
                        return;
                    }
                    continue;
                }
                // Only acks were written: look again at what to do.
                Ok(_) if room == 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    if !inner.shared.is_open() {
                        return;
                    }
                    // Redis refused a command (out of memory, a key of the
                    // wrong type): keep consuming once it may have passed.
                    tracing::warn!(error = %e, "fetching failed; trying again in a second");
                    let mut state = lock(&inner.state);
                    // The acks that rode with it are written with the next.
                    state.pending_acks.extend(acks);
                    state.retry_at = Some(tokio::time::Instant::now() + FETCH_RETRY);
                    continue;
                }
            }
            let Some(conn) = waiter_connection(&mut waiter, &inner.shared).await else { return };
            let seconds = inner.shared.options.polling_interval.as_secs_f64();
            let first = keys[0].clone();
            let shared = inner.shared.clone();
            let wake = inner.wake.clone();
            drop(inner);
            let mut conn = conn;
            let mut blmove = redis::cmd("BLMOVE");
            blmove.arg(&first).arg(&first).arg("RIGHT").arg("RIGHT").arg(seconds);
            let wait = blmove.query_async::<Option<Vec<u8>>>(&mut conn);
            let woken = wake.notified();
            tokio::select! {
                result = wait => {
                    if let Err(e) = result {
                        let _ = shared.error(e, "waiting for messages");
                        return;
                    }
                }
                _ = woken => {}
            }
        } else {
            // Kombu's way: BRPOP, then record. A consumer killed in between
            // loses the message; kept for deployments that want exactly
            // Kombu's behaviour.
            if inner.write_acks(&acks).await.is_err() {
                return;
            }
            let Some(conn) = waiter_connection(&mut waiter, &inner.shared).await else { return };
            let seconds = inner.shared.options.polling_interval.as_secs_f64();
            let shared = inner.shared.clone();
            drop(inner);
            let mut conn = conn;
            let popped: Option<(String, Vec<u8>)> =
                match redis::cmd("BRPOP").arg(&keys).arg(seconds).query_async(&mut conn).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = shared.error(e, "waiting for messages");
                        return;
                    }
                };
            let Some((key, raw)) = popped else { continue };
            let Some(inner) = channel.upgrade() else { return };
            let tag = match envelope::decode(&raw) {
                Ok(e) if !e.tag.is_empty() => e.tag,
                _ => format!("kelp-{}", crate::content::ids::uuid4()),
            };
            let record = kombu_unacked_record(&raw);
            let mut pipe = redis::pipe();
            pipe.cmd("ZADD").arg(shared.keys.unacked_index()).arg(now_secs()).arg(&tag).ignore();
            pipe.cmd("HSET").arg(shared.keys.unacked()).arg(&tag).arg(record).ignore();
            if shared.pipe::<()>(&pipe, "recording a delivery").await.is_err() {
                return;
            }
            inner.dispatch(vec![Popped { source: Arc::from(key), raw: Bytes::from(raw), tag, decoded: None }]).await;
        }
    }
}

/// The fetch loop's second half: record each taken batch and hand it out
/// (or give it back when its consumers went away).
async fn hand_out(mut batches: tokio::sync::mpsc::Receiver<(Arc<ChannelInner>, Taken)>) {
    while let Some((inner, taken)) = batches.recv().await {
        let count = taken.fetched.len();
        let lists = taken.lists.clone();
        let finished = inner.finish(taken).await;
        {
            let mut state = lock(&inner.state);
            state.taken = state.taken.saturating_sub(count);
        }
        match finished {
            Ok(fetched) => inner.dispatch(fetched).await,
            Err(e) => {
                tracing::warn!(error = %e, count, "taken messages could not be recorded; given back, fetching again in a second");
                inner.give_back_after_failure(&lists).await;
                lock(&inner.state).retry_at = Some(tokio::time::Instant::now() + FETCH_RETRY);
            }
        }
        inner.wake.notify_one();
    }
}

/// The fetch loop's blocking connection, opened on first need.
async fn waiter_connection(waiter: &mut Option<MultiplexedConnection>, shared: &Shared) -> Option<MultiplexedConnection> {
    if waiter.is_none() {
        *waiter = shared.blocking_connection().await.ok();
    }
    waiter.clone()
}

/// Kombu's unacked record `[payload, exchange, routing_key]` of a payload
/// that decoded as an envelope (so is JSON as it stands), written straight
/// into the command: no copy of a large payload on the way.
struct KombuRecord<'a> {
    payload: &'a [u8],
    exchange: &'a str,
    routing_key: &'a str,
}

impl redis::ToRedisArgs for KombuRecord<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's buffer cannot fail.
        let _ = envelope::write_unacked_record(&mut arg, self.payload, self.exchange, self.routing_key);
    }
}

/// Kombu's unacked record for `raw`: `[payload, exchange, routing_key]`.
fn kombu_unacked_record(raw: &[u8]) -> Vec<u8> {
    let (exchange, routing_key) = envelope::decode(raw)
        .map(|e| (e.exchange.to_string(), e.routing_key.to_string()))
        .unwrap_or_default();
    let payload: serde_json::Value = serde_json::from_slice(raw)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(raw).into_owned()));
    serde_json::to_vec(&serde_json::json!([payload, exchange, routing_key])).unwrap_or_default()
}
