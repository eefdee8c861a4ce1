//! [`ConsumerRecord`]: one queue subscription of a consumer, kept by the
//! supervisor so that recovery can consume again after a reconnect and the
//! consumer's stream simply continues.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::active::lock;
use super::channel::ChannelCore;
use crate::content::text::SharedStr;
use crate::content::value::FieldTable;
use crate::transport::{AnyChannel, ConsumeArgs, DeliverySender};

/// Stamps subscriptions: deliveries carry the epoch of the subscription
/// that received them, so acks never cross connections.
pub(crate) fn next_epoch() -> u64 {
    static EPOCH: AtomicU64 = AtomicU64::new(1);
    EPOCH.fetch_add(1, Ordering::Relaxed)
}

/// Where a subscription currently lives.
#[derive(Clone)]
pub(crate) struct Subscription {
    pub(crate) channel: AnyChannel,
    pub(crate) epoch: u64,
    /// Added to the broker's delivery tags so that tags seen by the
    /// application keep growing across recoveries.
    pub(crate) tag_offset: u64,
}

/// One queue subscription of a consumer, re-consumed after recovery.
pub(crate) struct ConsumerRecord {
    pub(crate) core: Arc<ChannelCore>,
    queue: Mutex<String>,
    pub(crate) tag: SharedStr,
    no_ack: bool,
    exclusive: bool,
    arguments: FieldTable,
    pub(crate) sink: DeliverySender,
    current: Mutex<Subscription>,
    /// The largest delivery tag handed to the application so far.
    max_tag: AtomicU64,
}

impl ConsumerRecord {
    /// The record of a subscription made with `args` on `core`, now
    /// living on `channel`.
    pub(crate) fn new(core: Arc<ChannelCore>, args: &ConsumeArgs, tag: SharedStr, sink: DeliverySender, channel: AnyChannel) -> ConsumerRecord {
        ConsumerRecord {
            core,
            queue: Mutex::new(args.queue.clone()),
            tag,
            no_ack: args.no_ack,
            exclusive: args.exclusive,
            arguments: args.arguments.clone(),
            sink,
            current: Mutex::new(Subscription { channel, epoch: args.epoch, tag_offset: 0 }),
            max_tag: AtomicU64::new(0),
        }
    }

    /// The arguments to consume again with, under a fresh epoch.
    pub(crate) fn consume_args(&self, epoch: u64) -> ConsumeArgs {
        ConsumeArgs {
            queue: self.queue(),
            consumer_tag: self.tag.clone(),
            no_ack: self.no_ack,
            exclusive: self.exclusive,
            arguments: self.arguments.clone(),
            epoch,
        }
    }

    pub(crate) fn subscription(&self) -> Subscription {
        lock(&self.current).clone()
    }

    pub(crate) fn queue(&self) -> String {
        lock(&self.queue).clone()
    }

    pub(crate) fn set_queue(&self, name: &str) {
        *lock(&self.queue) = name.to_owned();
    }

    pub(crate) fn moved_to(&self, channel: AnyChannel, epoch: u64) {
        let tag_offset = self.max_tag.load(Ordering::Acquire);
        *lock(&self.current) = Subscription { channel, epoch, tag_offset };
    }

    /// Note a delivery tag handed out (for monotonic tags after recovery).
    pub(crate) fn saw_tag(&self, tag: u64) {
        self.max_tag.fetch_max(tag, Ordering::AcqRel);
    }
}
