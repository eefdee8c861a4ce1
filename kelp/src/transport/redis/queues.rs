//! Queues in Redis: whether one exists, how many messages it holds, and
//! deleting one (explicitly, or as auto-delete when its last consumer
//! goes), which cancels its consumers.

use std::sync::Weak;

use super::keys::{self, parse_member};
use super::shared::{ChannelInner, Shared, lock};
use crate::transport::types::{CancelReason, ConsumerEvent};
use crate::error::Result;

impl Shared {
    pub(super) async fn queue_exists(&self, queue: &str) -> Result<bool> {
        let mut pipe = redis::pipe();
        pipe.cmd("HEXISTS").arg(self.keys.queue_records()).arg(queue);
        for key in self.keys.buckets(queue) {
            pipe.cmd("EXISTS").arg(key);
        }
        let found: Vec<i64> = self.pipe(&pipe, "looking up a queue").await?;
        Ok(found.iter().any(|n| *n > 0))
    }

    pub(super) async fn queue_size(&self, queue: &str) -> Result<u32> {
        let mut pipe = redis::pipe();
        for key in self.keys.buckets(queue) {
            pipe.cmd("LLEN").arg(key);
        }
        let sizes: Vec<u64> = self.pipe(&pipe, "counting messages").await?;
        Ok(u32::try_from(sizes.iter().sum::<u64>()).unwrap_or(u32::MAX))
    }

    /// Delete `queue`'s lists and every binding to it.
    pub(super) async fn delete_queue(&self, queue: &str) -> Result<u32> {
        let count = self.queue_size(queue).await?;
        let mut binding_sets: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(self.keys.binding_pattern()).arg("COUNT").arg(1000),
                    "finding bindings",
                )
                .await?;
            binding_sets.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in self.keys.buckets(queue) {
            pipe.cmd("DEL").arg(key).ignore();
        }
        pipe.cmd("HDEL").arg(self.keys.queue_records()).arg(queue).ignore();
        let suffix = format!("{}{queue}", keys::SEP);
        for set in &binding_sets {
            let members: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(set), "reading bindings").await?;
            let exchange = set.rsplit_once("_kombu.binding.").map(|(_, e)| e).unwrap_or_default();
            for member in members.iter().filter(|m| m.ends_with(&suffix) && parse_member(m).is_some_and(|(_, _, q)| q == queue)) {
                pipe.cmd("SREM").arg(set).arg(member).ignore();
                pipe.cmd("SREM").arg(self.keys.binding_permanent(exchange)).arg(member).ignore();
            }
        }
        self.pipe::<()>(&pipe, "deleting a queue").await?;
        lock(&self.fanout_bindings).remove(queue);
        lock(&self.expires).remove(queue);
        lock(&self.auto_delete).remove(queue);
        lock(&self.exclusive).remove(queue);
        // Consumers of the queue on this connection are cancelled, as RabbitMQ does.
        let channels: Vec<_> = lock(&self.channels).iter().filter_map(Weak::upgrade).collect();
        for channel in channels {
            channel.queue_deleted(queue);
        }
        Ok(count)
    }
}

impl ChannelInner {
    pub(super) async fn maybe_auto_delete(&self, queue: &str) {
        if !lock(&self.shared.auto_delete).contains(queue) {
            return;
        }
        let still_consumed = lock(&self.shared.channels)
            .iter()
            .filter_map(Weak::upgrade)
            .any(|c| lock(&c.state).consumers.iter().any(|e| e.queue == queue));
        if !still_consumed {
            let _ = self.shared.delete_queue(queue).await;
        }
    }

    /// The queue was deleted: cancel its consumers here.
    fn queue_deleted(&self, queue: &str) {
        let mut state = lock(&self.state);
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.consumers).into_iter().partition(|c| c.queue == queue);
        state.consumers = kept;
        drop(state);
        for consumer in gone {
            let _ = consumer.sink.send(ConsumerEvent::Cancelled(consumer.tag, CancelReason::QueueDeleted));
        }
        self.wake.notify_one();
    }
}
