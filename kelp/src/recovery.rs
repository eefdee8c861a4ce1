//! The recovery record: what a connection declared and consumed, kept in the
//! transport-agnostic layer so that every transport recovers the same way.
//!
//! After a reconnect kelp replays it in order — exchanges, queues (following
//! server-named queues to their new names), bindings — then reopens its
//! channels with their QoS and confirm mode, publishes again what was never
//! confirmed, and re-consumes, so a consumer's stream simply continues.
//! Entities the application deleted are forgotten, and so are auto-delete
//! entities that went away with their last consumer or binding.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::channel::ChannelCore;
use crate::entity::{Exchange, Queue};
use crate::transport::{AnyChannel, DeliverySender};
use crate::{FieldTable, SharedStr};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A declared queue.
#[derive(Clone, Debug)]
pub(crate) struct RecordedQueue {
    /// Its current name (the broker's, for server-named queues).
    pub(crate) name: String,
    /// How it was declared.
    pub(crate) spec: Queue,
    /// The broker chose the name: on recovery it chooses a new one.
    pub(crate) server_named: bool,
}

/// A binding, queue or exchange destination.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RecordedBinding {
    pub(crate) to_queue: bool,
    pub(crate) destination: String,
    pub(crate) source: String,
    pub(crate) routing_key: String,
    pub(crate) arguments: FieldTable,
}

/// Declarations to replay, in the order they were made.
#[derive(Default, Debug)]
pub(crate) struct Topology {
    pub(crate) exchanges: Vec<Exchange>,
    pub(crate) queues: Vec<RecordedQueue>,
    pub(crate) bindings: Vec<RecordedBinding>,
}

impl Topology {
    pub(crate) fn record_exchange(&mut self, exchange: &Exchange) {
        if exchange.passive || !exchange.needs_declaring() {
            return;
        }
        match self.exchanges.iter_mut().find(|e| e.name == exchange.name) {
            Some(existing) => *existing = exchange.clone(),
            None => self.exchanges.push(exchange.clone()),
        }
    }

    pub(crate) fn forget_exchange(&mut self, name: &str) {
        self.exchanges.retain(|e| e.name != name);
        self.bindings
            .retain(|b| b.source != name && (b.to_queue || b.destination != name));
    }

    pub(crate) fn record_queue(&mut self, spec: &Queue, declared_name: &str, passive: bool) {
        if passive || spec.passive || spec.no_declare {
            return;
        }
        let recorded = RecordedQueue {
            name: declared_name.to_owned(),
            spec: spec.clone(),
            server_named: spec.name.is_empty(),
        };
        match self.queues.iter_mut().find(|q| q.name == declared_name) {
            Some(existing) => *existing = recorded,
            None => self.queues.push(recorded),
        }
    }

    pub(crate) fn forget_queue(&mut self, name: &str) {
        self.queues.retain(|q| q.name != name);
        self.bindings.retain(|b| !(b.to_queue && b.destination == name));
    }

    /// Is `name` a queue the broker deletes when its last consumer goes?
    pub(crate) fn is_auto_delete_queue(&self, name: &str) -> bool {
        self.queues
            .iter()
            .any(|q| q.name == name && q.spec.auto_delete)
    }

    pub(crate) fn record_binding(&mut self, binding: RecordedBinding) {
        if !self.bindings.contains(&binding) {
            self.bindings.push(binding);
        }
    }

    pub(crate) fn forget_binding(&mut self, binding: &RecordedBinding) {
        self.bindings.retain(|b| b != binding);
        // An auto-delete exchange goes away with its last binding.
        let source = &binding.source;
        let still_bound = self.bindings.iter().any(|b| &b.source == source);
        if !still_bound {
            self.exchanges.retain(|e| !(e.name == *source && e.auto_delete));
        }
    }

    /// A server-named queue came back under a new name.
    pub(crate) fn rename_queue(&mut self, old: &str, new: &str) {
        for q in &mut self.queues {
            if q.name == old {
                q.name = new.to_owned();
            }
        }
        for b in &mut self.bindings {
            if b.to_queue && b.destination == old {
                b.destination = new.to_owned();
            }
        }
    }
}

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
    pub(crate) queue: Mutex<String>,
    pub(crate) tag: SharedStr,
    pub(crate) no_ack: bool,
    pub(crate) exclusive: bool,
    pub(crate) arguments: FieldTable,
    pub(crate) sink: DeliverySender,
    pub(crate) current: Mutex<Subscription>,
    /// The largest delivery tag handed to the application so far.
    pub(crate) max_tag: AtomicU64,
}

impl ConsumerRecord {
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
        *lock(&self.current) = Subscription {
            channel,
            epoch,
            tag_offset,
        };
    }

    /// Note a delivery tag handed out (for monotonic tags after recovery).
    pub(crate) fn saw_tag(&self, tag: u64) {
        self.max_tag.fetch_max(tag, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Exchange;

    fn binding(source: &str, queue: &str) -> RecordedBinding {
        RecordedBinding {
            to_queue: true,
            destination: queue.into(),
            source: source.into(),
            routing_key: "k".into(),
            arguments: FieldTable::new(),
        }
    }

    #[test]
    fn records_replace_duplicates_and_forget_deletions() {
        let mut t = Topology::default();
        t.record_exchange(&Exchange::direct("ex"));
        t.record_exchange(&Exchange::direct("ex").durable(false));
        t.record_exchange(&Exchange::direct("amq.direct"));
        t.record_exchange(&Exchange::direct("p").passive(true));
        assert_eq!(t.exchanges.len(), 1);
        assert!(!t.exchanges[0].durable, "the latest declaration wins");
        t.record_queue(&Queue::new("q"), "q", false);
        t.record_binding(binding("ex", "q"));
        t.record_binding(binding("ex", "q"));
        assert_eq!(t.bindings.len(), 1);
        t.forget_queue("q");
        assert!(t.queues.is_empty() && t.bindings.is_empty());
        t.forget_exchange("ex");
        assert!(t.exchanges.is_empty() && t.queues.is_empty() && t.bindings.is_empty());
    }

    #[test]
    fn auto_delete_exchanges_go_with_their_last_binding() {
        let mut t = Topology::default();
        t.record_exchange(&Exchange::fanout("auto").auto_delete(true));
        t.record_binding(binding("auto", "a"));
        t.record_binding(binding("auto", "b"));
        t.forget_binding(&binding("auto", "a"));
        assert_eq!(t.exchanges.len(), 1);
        t.forget_binding(&binding("auto", "b"));
        assert!(t.exchanges.is_empty());
    }

    #[test]
    fn server_named_queues_are_followed_to_their_new_name() {
        let mut t = Topology::default();
        t.record_queue(&Queue::server_named(), "amq.gen-1", false);
        t.record_binding(binding("ex", "amq.gen-1"));
        assert!(t.queues[0].server_named);
        t.rename_queue("amq.gen-1", "amq.gen-2");
        assert_eq!(t.queues[0].name, "amq.gen-2");
        assert_eq!(t.bindings[0].destination, "amq.gen-2");
    }
}
