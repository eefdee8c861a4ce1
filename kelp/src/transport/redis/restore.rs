//! Putting messages back: unacked messages past their visibility timeout
//! (Kombu's `restore_visible`), processing lists of consumers that died
//! before recording what they took (or of a fetch that failed), and a
//! channel's own deliveries when rejected, recovered or left at close.

use super::route::Route;
use super::shared::{ChannelInner, FANOUT_TAG, FETCH_BATCH, Shared, Unacked, now_secs};
use super::{envelope, keys, scripts};
use crate::error::Result;

/// How long a lost connection's tombstone stays: far longer than any write
/// of it a partition could still be holding back.
const GONE_TTL_MS: u64 = 600_000;

impl Shared {
    /// Give back the processing lists of consumers that died between
    /// taking messages and recording them.
    pub(super) async fn sweep_processing(&self) -> Result<i64> {
        let moved = self.give_back(&[]).await?;
        if moved > 0 {
            tracing::info!(broker = %self.broker, moved, "gave back messages a dead consumer had taken but not recorded");
        }
        Ok(moved)
    }

    /// For a `get` that found its queue empty: at most once per
    /// `unacked_restore_interval`, give back what dead consumers left, so
    /// a process that only polls sees those messages again too.
    pub(super) async fn sweep_when_idle(&self) {
        {
            let mut last = super::shared::lock(&self.idle_sweep);
            if last.is_some_and(|at| at.elapsed() < self.options.unacked_restore_interval) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        if let Err(e) = self.sweep_processing().await {
            tracing::debug!(error = %e, "the idle sweep of dead consumers' processing lists failed");
        }
        if let Err(e) = self.sweep_held().await {
            tracing::debug!(error = %e, "the idle sweep of gone connections' unacked deliveries failed");
        }
    }

    /// Put back the unacked deliveries of connections that are gone (their
    /// liveness key expired or was removed), as RabbitMQ requeues a closed
    /// channel's: seconds after, not after the visibility timeout.
    pub(super) async fn sweep_held(&self) -> Result<usize> {
        let holders: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(self.keys.holders()), "reading the holders").await?;
        let others: Vec<&String> = holders.iter().filter(|h| **h != self.owner).collect();
        if others.is_empty() {
            return Ok(0);
        }
        let mut alive = redis::pipe();
        for owner in &others {
            alive.cmd("EXISTS").arg(self.keys.alive(owner));
        }
        let exists: Vec<bool> = self.pipe(&alive, "asking which holders are alive").await?;
        let dead: Vec<String> = others.into_iter().zip(exists).filter(|(_, e)| !e).map(|(o, _)| o.clone()).collect();
        let restored = self.give_back_held(&dead).await?;
        if restored > 0 {
            tracing::info!(broker = %self.broker, restored, "put back the unacked deliveries of connections that are gone");
        }
        Ok(restored)
    }

    /// Put back what each of `owners` recorded as unacked and never acked.
    /// A record is only restored while it is still the one the owner wrote
    /// (same time in the unacked index): the visibility timeout may have
    /// restored it meanwhile and another consumer hold it now.
    pub(super) async fn give_back_held(&self, owners: &[String]) -> Result<usize> {
        let mut restored = 0;
        for owner in owners {
            let held_key = self.keys.held(owner);
            let held: Vec<(String, String)> = self.query(redis::cmd("HGETALL").arg(&held_key), "reading a connection's unacked deliveries").await?;
            for (tag, value) in held {
                let Some((recorded_at, source)) = value.split_once(keys::SEP) else { continue };
                let mut look = redis::pipe();
                look.cmd("ZSCORE").arg(self.keys.unacked_index()).arg(&tag).cmd("HGET").arg(self.keys.unacked()).arg(&tag);
                let (score, record): (Option<f64>, Option<Vec<u8>>) = self.pipe(&look, "reading an unacked message").await?;
                let same = matches!((score, recorded_at.parse::<f64>()), (Some(s), Ok(r)) if (s - r).abs() < 1e-3);
                let Some(record) = record.filter(|_| same) else { continue };
                let Some((payload, _, _)) = split_unacked_record(&record) else {
                    tracing::error!(tag, "an unacked record is not [payload, exchange, routing_key]; left for the visibility timeout");
                    continue;
                };
                let marked = envelope::mark_redelivered(&payload).unwrap_or(payload);
                if self.restore_record(&tag, &marked, &[source.to_owned()], false).await? {
                    restored += 1;
                }
            }
            let mut forget = redis::pipe();
            forget.cmd("DEL").arg(&held_key).ignore().cmd("SREM").arg(self.keys.holders()).arg(owner).ignore();
            self.pipe::<()>(&forget, "forgetting a gone connection's unacked deliveries").await?;
        }
        Ok(restored)
    }

    /// A new connection of a client whose earlier connection was lost: that
    /// one will fetch no more, so what it took and had not recorded goes
    /// back now, rather than when its liveness key expires (15–25 s, and
    /// only for kelp's consumers to see). Its liveness key goes too, so that
    /// a fetch of it still on the wire (a partition delays, it does not
    /// always drop) is given back by the next sweep of any consumer.
    pub(super) async fn give_back_predecessors(&self, client: &str) -> Result<i64> {
        let registry: std::collections::HashMap<String, String> =
            self.query(redis::cmd("HGETALL").arg(self.keys.processing_registry()), "reading the processing registry").await?;
        let holders: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(self.keys.holders()), "reading the holders").await?;
        let prefix = format!("{client}.");
        let predecessor = |owner: &str| owner.starts_with(&prefix) && owner != self.owner;
        let mut owners = std::collections::BTreeSet::new();
        let mut lists = Vec::new();
        for (list, value) in registry {
            let Some((owner, _source)) = value.split_once(keys::SEP) else { continue };
            if predecessor(owner) {
                owners.insert(owner.to_owned());
                lists.push(list);
            }
        }
        let holding: Vec<String> = holders.into_iter().filter(|h| predecessor(h)).collect();
        owners.extend(holding.iter().cloned());
        if owners.is_empty() {
            return Ok(0);
        }
        let mut forget = redis::pipe();
        for owner in &owners {
            forget.cmd("SET").arg(self.keys.gone(owner)).arg(1).arg("PX").arg(GONE_TTL_MS).ignore();
            forget.cmd("DEL").arg(self.keys.alive(owner)).ignore();
        }
        self.pipe::<()>(&forget, "forgetting this client's lost connection").await?;
        // Taken and unrecorded first, then recorded and unacked: the order
        // they were taken in.
        let taken = self.give_back(&lists).await?;
        let held = self.give_back_held(&holding).await?;
        Ok(taken + i64::try_from(held).unwrap_or(i64::MAX))
    }

    /// Give back the messages waiting in `lists` (this connection's, after
    /// a failed fetch), or with no lists, those of dead consumers.
    pub(super) async fn give_back(&self, lists: &[String]) -> Result<i64> {
        let mut invocation = scripts::GIVE_BACK.prepare_invoke();
        invocation.key(self.keys.processing_registry());
        for list in lists {
            invocation.key(list);
        }
        invocation.arg(self.keys.alive_prefix()).arg(keys::SEP);
        self.script(&invocation, "giving back taken messages").await
    }

    /// Put messages whose visibility timeout passed back in their queues
    /// (Kombu's `restore_visible`), under Kombu's `unacked_mutex`.
    pub(super) async fn restore_visible(&self) -> Result<usize> {
        let token = crate::content::ids::uuid4();
        let mutex = self.keys.unacked_mutex();
        let expire_ms = u64::try_from(self.options.unacked_mutex_expire.as_millis()).unwrap_or(u64::MAX);
        let locked: Option<String> = self
            .query(redis::cmd("SET").arg(&mutex).arg(&token).arg("NX").arg("PX").arg(expire_ms), "locking the unacked sweep")
            .await?;
        if locked.is_none() {
            return Ok(0);
        }
        let result = self.restore_expired().await;
        let mut unlock = scripts::UNLOCK.prepare_invoke();
        unlock.key(&mutex).arg(&token);
        let _: Result<i64> = self.script(&unlock, "unlocking the unacked sweep").await;
        result
    }

    async fn restore_expired(&self) -> Result<usize> {
        let ceiling = now_secs() - self.options.visibility_timeout.as_secs_f64();
        let tags: Vec<String> = self
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.unacked_index())
                    .arg("-inf")
                    .arg(format!("({ceiling}"))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(FETCH_BATCH),
                "finding expired unacked messages",
            )
            .await?;
        let mut restored = 0;
        for tag in tags {
            let record: Option<Vec<u8>> =
                self.query(redis::cmd("HGET").arg(self.keys.unacked()).arg(&tag), "reading an unacked message").await?;
            let Some(record) = record else {
                // Acked meanwhile, or an index entry without a record.
                let _: i64 = self.query(redis::cmd("ZREM").arg(self.keys.unacked_index()).arg(&tag), "cleaning the unacked index").await?;
                continue;
            };
            let (payload, exchange, routing_key) = match split_unacked_record(&record) {
                Some(parts) => parts,
                None => {
                    tracing::error!(tag, "an unacked record is not [payload, exchange, routing_key]; left in place");
                    continue;
                }
            };
            let marked = envelope::mark_redelivered(&payload).unwrap_or(payload);
            let priority = envelope::decode(&marked).map(|e| envelope::priority_of(&e.content)).unwrap_or(0);
            let queues = match self.route(&exchange, &routing_key).await? {
                Route::Queues(queues) => queues,
                // A fanout message goes back to nobody in particular: the
                // subscribers of the moment get it again.
                Route::Fanout(_) => Vec::new(),
            };
            let step = self.keys.step_of(priority);
            let targets: Vec<String> = queues.iter().map(|q| self.keys.bucket(q, step)).collect();
            if self.restore_record(&tag, &marked, &targets, false).await? {
                restored += 1;
            }
        }
        if restored > 0 {
            tracing::info!(broker = %self.broker, restored, "restored unacked messages past their visibility timeout");
        }
        Ok(restored)
    }

    /// Atomically drop the unacked record `tag` and push `payload` onto
    /// `targets` (front of the line, or back when `back`); false if the
    /// record was already gone (acked, or restored by someone else).
    async fn restore_record(&self, tag: &str, payload: &[u8], targets: &[String], back: bool) -> Result<bool> {
        // A fanout delivery has no record in Redis: put it back regardless.
        let force = tag.starts_with(FANOUT_TAG);
        let mut invocation = scripts::RESTORE.prepare_invoke();
        invocation.key(self.keys.unacked()).key(self.keys.unacked_index());
        for target in targets {
            invocation.key(target);
        }
        invocation.arg(tag).arg(payload).arg(if back { "back" } else { "front" }).arg(if force { "force" } else { "" });
        let restored: i64 = self.script(&invocation, "restoring a message").await?;
        Ok(restored == 1)
    }
}

/// Parse Kombu's unacked record `[payload, exchange, routing_key]`; the
/// payload is the envelope object (or a string for one that was not JSON).
fn split_unacked_record(record: &[u8]) -> Option<(Vec<u8>, String, String)> {
    let mut parts: Vec<serde_json::Value> = serde_json::from_slice(record).ok()?;
    if parts.len() != 3 {
        return None;
    }
    let routing_key = parts.pop()?.as_str()?.to_owned();
    let exchange = parts.pop()?.as_str()?.to_owned();
    let payload = match parts.pop()? {
        serde_json::Value::String(raw) => raw.into_bytes(),
        other => serde_json::to_vec(&other).ok()?,
    };
    Some((payload, exchange, routing_key))
}

impl ChannelInner {
    /// Put deliveries back in the lists they came from.
    pub(super) async fn requeue(&self, unacked: Vec<Unacked>, back: bool) {
        let mut tags = Vec::with_capacity(unacked.len());
        for u in unacked {
            let marked = envelope::mark_redelivered(&u.raw).unwrap_or_else(|_| u.raw.to_vec());
            let targets: Vec<String> = if u.source.is_empty() { Vec::new() } else { vec![u.source.to_string()] };
            if let Err(e) = self.shared.restore_record(&u.tag, &marked, &targets, back).await {
                tracing::warn!(error = %e, tag = u.tag, "could not put a message back; the visibility timeout will");
            }
            tags.push(u.tag);
        }
        if !tags.is_empty() {
            let held = self.shared.keys.held(&self.shared.owner);
            let _: Result<()> = self.shared.pipe(redis::pipe().cmd("HDEL").arg(held).arg(&tags).ignore(), "forgetting requeued deliveries").await;
        }
    }
}
