//! What happened to every message of a drill: how each publish ended and
//! every time a message was delivered, counted by id (a duplicate can hide a
//! loss in totals, never in ids).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// A message's identity: the run, the producer and its sequence number,
/// written `<run>.<producer>.<seq>` into the message id and the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The producer that sent it.
    pub producer: u32,
    /// Its number among that producer's messages, from 0.
    pub seq: u64,
}

impl MessageId {
    /// The text form, unique to `run`.
    pub fn render(self, run: &str) -> String {
        format!("{run}.{}.{}", self.producer, self.seq)
    }

    /// Read an id of `run` back; `None` for another run's or a foreign one.
    pub fn parse(text: &str, run: &str) -> Option<MessageId> {
        let rest = text.strip_prefix(run)?.strip_prefix('.')?;
        let (producer, seq) = rest.split_once('.')?;
        Some(MessageId { producer: producer.parse().ok()?, seq: seq.parse().ok()? })
    }
}

/// How a publish ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The broker confirmed it: it must be delivered.
    Confirmed,
    /// The broker refused it (a nack): it may be absent.
    Nacked,
    /// Mandatory and unroutable: returned.
    Returned,
    /// Sent, but the confirm never came (timed out, connection lost and
    /// recovery gave up): it may or may not have been taken.
    Indeterminate,
}

/// One publish: when it went out and how it ended.
#[derive(Clone, Copy, Debug)]
pub struct Publish {
    /// When the publish was handed to kelp.
    pub sent_at: Instant,
    /// How and when it ended; `None` while in flight.
    pub settled: Option<(Outcome, Instant)>,
}

/// How a message was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBy {
    /// A `basic.consume` subscription.
    Consume,
    /// A `basic.get`.
    Get,
    /// The final drain after the faults healed.
    Drain,
}

/// One delivery of a message to the drill's consumers.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The message id as read (parsed, when it is one of this run's).
    pub id: Result<MessageId, String>,
    /// The broker says it was delivered before.
    pub redelivered: bool,
    /// The broker the consumer was connected to (password masked).
    pub node: String,
    /// How it was read.
    pub by: ReadBy,
    /// When it arrived.
    pub at: Instant,
}

/// The record of one drill, shared by its producers and consumers.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    publishes: HashMap<MessageId, Publish>,
    deliveries: Vec<Delivery>,
}

/// A copy of the record, to check or report on.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every publish, by id.
    pub publishes: HashMap<MessageId, Publish>,
    /// Every delivery, in the order they arrived.
    pub deliveries: Vec<Delivery>,
}

impl History {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `id` was handed to kelp now.
    pub fn sent(&self, id: MessageId) {
        self.inner().publishes.insert(id, Publish { sent_at: Instant::now(), settled: None });
    }

    /// The publish of `id` ended with `outcome` now.
    pub fn settled(&self, id: MessageId, outcome: Outcome) {
        if let Some(publish) = self.inner().publishes.get_mut(&id) {
            publish.settled = Some((outcome, Instant::now()));
        }
    }

    /// A message was delivered.
    pub fn delivered(&self, delivery: Delivery) {
        self.inner().deliveries.push(delivery);
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner();
        Snapshot { publishes: inner.publishes.clone(), deliveries: inner.deliveries.clone() }
    }

    /// An estimate of the record's heap, in KiB (tables by capacity, each
    /// delivery's node name).
    pub fn footprint_kib(&self) -> u64 {
        let inner = self.inner();
        let table = inner.publishes.capacity() * (std::mem::size_of::<(MessageId, Publish)>() + 1);
        let deliveries = inner.deliveries.capacity() * std::mem::size_of::<Delivery>();
        let names: usize = inner.deliveries.iter().map(|d| d.node.capacity() + d.id.as_ref().err().map_or(0, String::capacity)).sum();
        ((table + deliveries + names) / 1024) as u64
    }

    /// Publishes still waiting for their end.
    pub fn in_flight(&self) -> usize {
        self.inner().publishes.values().filter(|p| p.settled.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_other_runs_are_foreign() {
        let id = MessageId { producer: 3, seq: 41 };
        assert_eq!(id.render("r1"), "r1.3.41");
        assert_eq!(MessageId::parse("r1.3.41", "r1"), Some(id));
        assert_eq!(MessageId::parse("r2.3.41", "r1"), None);
        assert_eq!(MessageId::parse("r1.x.41", "r1"), None);
        assert_eq!(MessageId::parse("r10.3.41", "r1"), None, "a run whose name starts alike");
    }
}
