//! [`Registry`]: what the application built on a connection and what
//! recovery must rebuild — the topology record, the live supervised
//! channels and the live subscriptions. A change wakes the warm standby so
//! that it follows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use super::active::lock;
use super::channel::ChannelCore;
use super::subscription::ConsumerRecord;
use super::topology::{RecordedBinding, RecordedQueue, Topology};
use crate::transport::ExchangeDeclare;

/// The application's record on one connection.
#[derive(Default)]
pub(crate) struct Registry {
    topology: Mutex<Topology>,
    /// Bumped on every change to the topology.
    version: AtomicU64,
    cores: Mutex<Vec<Weak<ChannelCore>>>,
    consumers: Mutex<Vec<Weak<ConsumerRecord>>>,
    /// Woken on every change, for the warm standby.
    changed: Arc<Notify>,
}

/// A copy of the topology, to declare without holding the lock.
pub(crate) struct TopologySnapshot {
    pub(crate) exchanges: Vec<ExchangeDeclare>,
    pub(crate) queues: Vec<RecordedQueue>,
    pub(crate) bindings: Vec<RecordedBinding>,
}

impl Registry {
    /// Change the topology record.
    pub(crate) fn record(&self, f: impl FnOnce(&mut Topology)) {
        f(&mut lock(&self.topology));
        self.version.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// Changes with every change to the topology record.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self) -> TopologySnapshot {
        let t = lock(&self.topology);
        TopologySnapshot {
            exchanges: t.exchanges.clone(),
            queues: t.queues.clone(),
            bindings: t.bindings.clone(),
        }
    }

    /// The bindings as they are now (after renames).
    pub(crate) fn bindings(&self) -> Vec<RecordedBinding> {
        lock(&self.topology).bindings.clone()
    }

    /// Woken on every change (the warm standby waits on it).
    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Something the warm standby mirrors changed besides the topology (a
    /// channel's QoS or confirm mode).
    pub(crate) fn touch(&self) {
        self.changed.notify_one();
    }

    pub(crate) fn register_core(&self, core: &Arc<ChannelCore>) {
        {
            let mut cores = lock(&self.cores);
            cores.retain(|c| c.strong_count() > 0);
            cores.push(Arc::downgrade(core));
        }
        self.touch();
    }

    pub(crate) fn register_consumer(&self, record: &Arc<ConsumerRecord>) {
        let mut consumers = lock(&self.consumers);
        consumers.retain(|c| c.strong_count() > 0);
        consumers.push(Arc::downgrade(record));
    }

    /// A subscription ended for good (cancelled by the application or the
    /// broker): stop re-consuming it, and forget its queue when the broker
    /// deletes auto-delete queues with their last consumer.
    pub(crate) fn forget_consumer(&self, record: &Arc<ConsumerRecord>) {
        let queue = record.queue();
        let still_consumed = {
            let mut consumers = lock(&self.consumers);
            consumers.retain(|c| c.upgrade().is_some_and(|c| !Arc::ptr_eq(&c, record)));
            consumers.iter().filter_map(Weak::upgrade).any(|c| c.queue() == queue)
        };
        if !still_consumed {
            self.record(|t| {
                if t.is_auto_delete_queue(&queue) {
                    t.forget_queue(&queue);
                }
            });
        }
    }

    pub(crate) fn live_cores(&self) -> Vec<Arc<ChannelCore>> {
        lock(&self.cores).iter().filter_map(Weak::upgrade).collect()
    }

    pub(crate) fn live_consumers(&self) -> Vec<Arc<ConsumerRecord>> {
        lock(&self.consumers).iter().filter_map(Weak::upgrade).collect()
    }

    /// A server-named queue came back under a new name: follow it in the
    /// topology and in the subscriptions.
    pub(crate) fn rename_queue(&self, old: &str, new: &str) {
        self.record(|t| t.rename_queue(old, new));
        for record in self.live_consumers() {
            if record.queue() == old {
                record.set_queue(new);
            }
        }
    }

    /// Forget the topology and the subscriptions (the application closed
    /// the connection); the channels stay, to be reopened on next use.
    pub(crate) fn clear(&self) {
        *lock(&self.topology) = Topology::default();
        lock(&self.consumers).clear();
    }
}
