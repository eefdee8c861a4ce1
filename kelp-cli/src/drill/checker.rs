//! The checker, as Jepsen's total-queue: every message accounted for by id.
//!
//! - **lost**: confirmed, and neither consumed nor left in the final drain;
//! - **unexpected**: read, but never sent by this run;
//! - **duplicated**: read more than once (at-least-once allows it);
//! - **recovered**: its publish was indeterminate (or refused), and yet it
//!   was read.
//!
//! A drill passes only with lost = 0 and unexpected = 0.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::history::{MessageId, Outcome, Snapshot};

/// The checker's counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Publishes attempted.
    pub sent: usize,
    /// Of those, confirmed by the broker.
    pub confirmed: usize,
    /// Nacked or returned.
    pub refused: usize,
    /// Sent, and never confirmed nor refused.
    pub indeterminate: usize,
    /// Distinct ids read (consumed or drained).
    pub read: usize,
    /// Deliveries in all (duplicates included).
    pub deliveries: usize,
    /// Confirmed and never read: the ones that matter.
    pub lost: BTreeSet<MessageId>,
    /// Read and never sent: this run's ids that were not published.
    pub unexpected: BTreeSet<MessageId>,
    /// Messages of other runs or not of the drill at all (the queue was
    /// not the drill's alone); reported, not a failure.
    pub foreign: usize,
    /// Ids read more than once, with how many times.
    pub duplicated: BTreeMap<MessageId, usize>,
    /// Indeterminate or refused, and yet read.
    pub recovered: usize,
}

impl Verdict {
    /// The drill passes: nothing confirmed was lost, nothing appeared from nowhere.
    pub fn passed(&self) -> bool {
        self.lost.is_empty() && self.unexpected.is_empty()
    }

    /// `part` of `whole`, as a fraction (0 when there is no whole).
    pub fn fraction(part: usize, whole: usize) -> f64 {
        if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
    }

    /// The counts as JSON (the ids of lost and unexpected messages, at most
    /// a hundred of each, to find them in the brokers' logs).
    pub fn to_json(&self, run: &str) -> serde_json::Value {
        let ids = |set: &BTreeSet<MessageId>| set.iter().take(100).map(|id| id.render(run)).collect::<Vec<_>>();
        let duplicates: usize = self.duplicated.values().map(|n| n - 1).sum();
        json!({
            "passed": self.passed(),
            "sent": self.sent,
            "confirmed": self.confirmed,
            "refused": self.refused,
            "indeterminate": self.indeterminate,
            "read": self.read,
            "deliveries": self.deliveries,
            "lost": self.lost.len(),
            "lost_fraction": Verdict::fraction(self.lost.len(), self.confirmed),
            "lost_ids": ids(&self.lost),
            "unexpected": self.unexpected.len(),
            "unexpected_ids": ids(&self.unexpected),
            "duplicated": self.duplicated.len(),
            "duplicate_deliveries": duplicates,
            "duplicated_fraction": Verdict::fraction(self.duplicated.len(), self.read),
            "recovered": self.recovered,
            "recovered_fraction": Verdict::fraction(self.recovered, self.indeterminate),
            "foreign": self.foreign,
        })
    }
}

/// Count everything in `history`.
pub fn check(history: &Snapshot) -> Verdict {
    let mut verdict = Verdict { sent: history.publishes.len(), deliveries: history.deliveries.len(), ..Verdict::default() };
    let mut read: BTreeMap<MessageId, usize> = BTreeMap::new();
    for delivery in &history.deliveries {
        match &delivery.id {
            Ok(id) => *read.entry(*id).or_default() += 1,
            Err(_) => verdict.foreign += 1,
        }
    }
    for (id, publish) in &history.publishes {
        let was_read = read.contains_key(id);
        match publish.settled.map(|(outcome, _)| outcome) {
            Some(Outcome::Confirmed) => {
                verdict.confirmed += 1;
                if !was_read {
                    verdict.lost.insert(*id);
                }
            }
            Some(Outcome::Nacked | Outcome::Returned) => {
                verdict.refused += 1;
                if was_read {
                    verdict.recovered += 1;
                }
            }
            Some(Outcome::Indeterminate) | None => {
                verdict.indeterminate += 1;
                if was_read {
                    verdict.recovered += 1;
                }
            }
        }
    }
    for (id, count) in &read {
        if !history.publishes.contains_key(id) {
            verdict.unexpected.insert(*id);
        }
        if *count > 1 {
            verdict.duplicated.insert(*id, *count);
        }
    }
    verdict.read = read.len();
    verdict
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::drill::history::{Delivery, Publish, ReadBy};

    fn id(seq: u64) -> MessageId {
        MessageId { producer: 0, seq }
    }

    fn published(outcome: Option<Outcome>) -> Publish {
        let now = Instant::now();
        Publish { sent_at: now, settled: outcome.map(|o| (o, now)) }
    }

    fn read(id: Result<MessageId, String>) -> Delivery {
        Delivery { id, redelivered: false, node: "n".into(), by: ReadBy::Consume, at: Instant::now() }
    }

    #[test]
    fn every_kind_of_message_is_counted_by_id() {
        let mut history = Snapshot::default();
        history.publishes.insert(id(0), published(Some(Outcome::Confirmed))); // read twice
        history.publishes.insert(id(1), published(Some(Outcome::Confirmed))); // lost
        history.publishes.insert(id(2), published(Some(Outcome::Indeterminate))); // recovered
        history.publishes.insert(id(3), published(None)); // in flight, never read
        history.publishes.insert(id(4), published(Some(Outcome::Nacked)));
        for d in [Ok(id(0)), Ok(id(0)), Ok(id(2)), Ok(id(9)), Err("someone-else".to_owned())] {
            history.deliveries.push(read(d));
        }
        let v = check(&history);
        assert_eq!((v.sent, v.confirmed, v.refused, v.indeterminate), (5, 2, 1, 2));
        assert_eq!(v.lost.iter().copied().collect::<Vec<_>>(), [id(1)]);
        assert_eq!(v.unexpected.iter().copied().collect::<Vec<_>>(), [id(9)]);
        assert_eq!(v.duplicated.get(&id(0)), Some(&2));
        assert_eq!((v.recovered, v.foreign, v.read, v.deliveries), (1, 1, 3, 5));
        assert!(!v.passed());
    }

    #[test]
    fn a_duplicate_does_not_hide_a_loss() {
        // Totals would balance (2 confirmed, 2 deliveries); ids do not.
        let mut history = Snapshot::default();
        history.publishes.insert(id(0), published(Some(Outcome::Confirmed)));
        history.publishes.insert(id(1), published(Some(Outcome::Confirmed)));
        history.deliveries.push(read(Ok(id(0))));
        history.deliveries.push(read(Ok(id(0))));
        let v = check(&history);
        assert_eq!(v.lost.len(), 1);
        assert!(!v.passed());
        history.deliveries.push(read(Ok(id(1))));
        assert!(check(&history).passed());
    }
}
