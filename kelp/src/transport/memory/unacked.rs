//! Channel state that the broker touches while delivering: unacknowledged
//! deliveries and where they came from, consumer and channel credit
//! (basic.qos), ack/nack/reject and requeue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::content::text::SharedStr;
use crate::error::Result;

use super::errors::precondition;
use super::locks::lock;
use super::message::StoredMessage;

/// What a channel needs of the queues its deliveries came from, once it has
/// settled them and let go of its lock. A type parameter, not a trait object,
/// so an ack compiles to the same direct calls; the queue implements it.
pub(super) trait Redeliver {
    /// Ready messages are waiting for some consumer's credit.
    fn is_starved(&self) -> bool;
    /// Take a message back for redelivery.
    fn requeue(self: &Arc<Self>, message: StoredMessage);
    /// Deliver again, now that credit was freed.
    fn kick(self: &Arc<Self>);
}

/// Unacknowledged deliveries of one consumer. Atomic so that an ack frees
/// credit without taking the queue's lock (the publisher holds it often).
#[derive(Default)]
pub(super) struct Credit {
    pub(super) outstanding: AtomicU32,
}

/// Where unacknowledged deliveries came from. Entries refer to an origin by
/// index so that tracking a delivery touches no shared reference count.
struct Origin<Q> {
    queue: Arc<Q>,
    credit: Option<Arc<Credit>>,
}

pub(super) struct UnackedEntry {
    origin: u32,
    pub(super) message: StoredMessage,
}

struct Unacked<Q> {
    /// Delivery tag of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<UnackedEntry>>,
    origins: Vec<Origin<Q>>,
}

impl<Q> Default for Unacked<Q> {
    fn default() -> Self {
        Unacked {
            base: 0,
            slots: VecDeque::new(),
            origins: Vec::new(),
        }
    }
}

/// What must happen after an entry was taken out, outside the channel's lock.
struct Settled<Q> {
    queue: Arc<Q>,
    message: Option<StoredMessage>,
}

impl<Q: Redeliver> Unacked<Q> {
    fn origin_index(&mut self, queue: &Arc<Q>, credit: Option<&Arc<Credit>>) -> u32 {
        let found = self.origins.iter().position(|o| {
            Arc::ptr_eq(&o.queue, queue)
                && match (&o.credit, credit) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        });
        let index = found.unwrap_or_else(|| {
            if self.slots.is_empty() && self.origins.len() >= 64 {
                self.origins.clear(); // forget origins of long-gone consumers
            }
            self.origins.push(Origin {
                queue: queue.clone(),
                credit: credit.cloned(),
            });
            self.origins.len() - 1
        });
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    fn take(&mut self, tag: u64) -> Option<UnackedEntry> {
        let index = usize::try_from(tag.checked_sub(self.base)?).ok()?;
        let entry = self.slots.get_mut(index)?.take();
        self.compact();
        entry
    }

    fn take_up_to(&mut self, tag: u64) -> Vec<UnackedEntry> {
        let mut taken = Vec::new();
        while self.base <= tag {
            match self.slots.pop_front() {
                Some(slot) => {
                    self.base += 1;
                    taken.extend(slot);
                }
                None => break,
            }
        }
        self.compact();
        taken
    }

    fn compact(&mut self) {
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.slots.is_empty() {
            // Keep the invariant base == next tag to be tracked.
            self.base = 0;
        }
    }

    /// Free the entry's credit; return what still needs the queue's lock
    /// (a requeue, or a starved queue to kick), if anything.
    fn release(&self, entry: UnackedEntry, requeue: bool) -> Option<Settled<Q>> {
        let origin = self.origins.get(entry.origin as usize)?;
        if let Some(credit) = &origin.credit {
            credit.outstanding.fetch_sub(1, Ordering::SeqCst);
        }
        if requeue {
            return Some(Settled {
                queue: origin.queue.clone(),
                message: Some(entry.message),
            });
        }
        // Only messages held back for lack of credit need the queue now.
        origin.queue.is_starved().then(|| Settled {
            queue: origin.queue.clone(),
            message: None,
        })
    }
}

impl<Q: Redeliver> Settled<Q> {
    fn finish(self) {
        match self.message {
            Some(message) => self.queue.requeue(message),
            None => self.queue.kick(),
        }
    }
}

/// What the broker knows of a channel.
pub(super) struct ChannelShared<Q> {
    pub(super) open: AtomicBool,
    pub(super) next_tag: AtomicU64,
    /// basic.qos prefetch for consumers created from now on (0 = unlimited).
    pub(super) prefetch: AtomicU32,
    /// basic.qos global prefetch shared by the channel's consumers.
    global_prefetch: AtomicU32,
    global_outstanding: AtomicU32,
    unacked: Mutex<Unacked<Q>>,
    /// consumer tag → queue
    pub(super) consumers: Mutex<HashMap<SharedStr, Arc<Q>>>,
}

impl<Q: Redeliver> ChannelShared<Q> {
    pub(super) fn new() -> ChannelShared<Q> {
        ChannelShared {
            open: AtomicBool::new(true),
            next_tag: AtomicU64::new(1),
            prefetch: AtomicU32::new(0),
            global_prefetch: AtomicU32::new(0),
            global_outstanding: AtomicU32::new(0),
            unacked: Mutex::new(Unacked::default()),
            consumers: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn set_global_prefetch(&self, n: u32) {
        self.global_prefetch.store(n, Ordering::Relaxed);
    }

    /// Take one unit of channel-wide credit (basic.qos global).
    pub(super) fn reserve_global_credit(&self, no_ack: bool) -> bool {
        let limit = self.global_prefetch.load(Ordering::Relaxed);
        if no_ack || limit == 0 {
            return true;
        }
        self.global_outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| (n < limit).then_some(n + 1))
            .is_ok()
    }

    pub(super) fn release_global_credit(&self, no_ack: bool, n: u32) {
        if !no_ack && self.global_prefetch.load(Ordering::Relaxed) != 0 {
            let _ = self
                .global_outstanding
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
        }
    }

    /// Record an unacknowledged delivery; returns its delivery tag.
    pub(super) fn track(&self, queue: &Arc<Q>, credit: Option<&Arc<Credit>>, message: StoredMessage) -> u64 {
        let mut unacked = lock(&self.unacked);
        let origin = unacked.origin_index(queue, credit);
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        if unacked.slots.is_empty() {
            unacked.base = tag;
        }
        let index = usize::try_from(tag - unacked.base).unwrap_or(usize::MAX);
        while unacked.slots.len() < index {
            unacked.slots.push_back(None);
        }
        unacked.slots.push_back(Some(UnackedEntry { origin, message }));
        tag
    }

    pub(super) fn untrack(&self, tag: u64) -> Option<UnackedEntry> {
        lock(&self.unacked).take(tag)
    }

    pub(super) fn forget_consumer(&self, tag: &str) {
        lock(&self.consumers).remove(tag);
    }

    /// Settle deliveries: ack (`requeue == None`), or reject/nack with or
    /// without requeue. An unknown tag is a channel error, as in AMQP.
    pub(super) fn settle(&self, tag: u64, multiple: bool, requeue: Option<bool>) -> Result<()> {
        let requeue = requeue == Some(true);
        if multiple {
            let after: Vec<Settled<Q>> = {
                let mut unacked = lock(&self.unacked);
                let entries = unacked.take_up_to(if tag == 0 { u64::MAX } else { tag });
                self.release_global_credit(false, u32::try_from(entries.len()).unwrap_or(u32::MAX));
                entries
                    .into_iter()
                    .filter_map(|e| unacked.release(e, requeue))
                    .collect()
            };
            after.into_iter().for_each(Settled::finish);
        } else {
            // The common case, one ack: no allocation, no reference count.
            let after = {
                let mut unacked = lock(&self.unacked);
                let Some(entry) = unacked.take(tag) else {
                    return Err(precondition(format!("unknown delivery tag {tag}")));
                };
                unacked.release(entry, requeue)
            };
            self.release_global_credit(false, 1);
            if let Some(after) = after {
                after.finish();
            }
        }
        if self.global_prefetch.load(Ordering::Relaxed) != 0 {
            self.kick_consumers();
        }
        Ok(())
    }

    /// Let every queue this channel consumes from deliver again (after
    /// channel-wide credit was freed).
    fn kick_consumers(&self) {
        let queues: Vec<Arc<Q>> = lock(&self.consumers).values().cloned().collect();
        for queue in queues {
            queue.kick();
        }
    }

    /// Requeue every unacknowledged delivery (channel close, basic.recover).
    pub(super) fn requeue_all(&self) {
        let after: Vec<Settled<Q>> = {
            let mut unacked = lock(&self.unacked);
            let entries = unacked.take_up_to(u64::MAX);
            self.release_global_credit(false, u32::try_from(entries.len()).unwrap_or(u32::MAX));
            entries
                .into_iter()
                .filter_map(|e| unacked.release(e, true))
                .collect()
        };
        after.into_iter().for_each(Settled::finish);
    }
}
