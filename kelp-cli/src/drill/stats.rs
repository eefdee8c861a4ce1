//! Times measured from the history: publish latency, and for every fault
//! how long until the first confirm and the first delivery after it.

use std::time::{Duration, Instant};

use serde_json::json;

use super::faults::Mark;
use super::history::{Outcome, Snapshot};

/// Percentiles of a set of durations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

impl Spread {
    /// The spread of `values` (any order).
    pub fn of(mut values: Vec<Duration>) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_unstable();
        let at = |q: f64| values[(((values.len() - 1) as f64) * q).round() as usize];
        Spread { count: values.len(), p50: at(0.50), p99: at(0.99), max: at(1.0) }
    }

    /// As JSON, in milliseconds.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        json!({"count": self.count, "p50_ms": ms(self.p50), "p99_ms": ms(self.p99), "max_ms": ms(self.max)})
    }
}

/// Recovery from each fault.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// Fault → the first confirm of a publish sent after it.
    pub to_confirm: Spread,
    /// Fault → the first delivery after it.
    pub to_delivery: Spread,
    /// Faults after which nothing was confirmed again before the run ended.
    pub never_confirmed: usize,
    /// Faults after which nothing was delivered again before the run ended.
    pub never_delivered: usize,
}

/// Publish → confirm, for the confirmed publishes.
pub fn publish_latency(history: &Snapshot) -> Spread {
    Spread::of(
        history
            .publishes
            .values()
            .filter_map(|p| match p.settled {
                Some((Outcome::Confirmed, at)) => Some(at.saturating_duration_since(p.sent_at)),
                _ => None,
            })
            .collect(),
    )
}

/// How long after each fault publishing and consuming carried on. A
/// confirm counts only for a publish sent after the fault: a broker may
/// confirm what it took just before dying.
pub fn recovery(history: &Snapshot, marks: &[Mark]) -> Recovery {
    let mut confirm_times: Vec<(Instant, Instant)> = history
        .publishes
        .values()
        .filter_map(|p| match p.settled {
            Some((Outcome::Confirmed, at)) => Some((p.sent_at, at)),
            _ => None,
        })
        .collect();
    confirm_times.sort_unstable_by_key(|&(_, at)| at);
    let mut delivery_times: Vec<Instant> = history.deliveries.iter().map(|d| d.at).collect();
    delivery_times.sort_unstable();
    let mut recovery = Recovery::default();
    let (mut to_confirm, mut to_delivery) = (Vec::new(), Vec::new());
    for mark in marks.iter().filter(|m| !m.heal) {
        match confirm_times.iter().find(|&&(sent, _)| sent >= mark.at) {
            Some(&(_, at)) => to_confirm.push(at.saturating_duration_since(mark.at)),
            None => recovery.never_confirmed += 1,
        }
        match delivery_times.iter().find(|&&at| at >= mark.at) {
            Some(&at) => to_delivery.push(at.saturating_duration_since(mark.at)),
            None => recovery.never_delivered += 1,
        }
    }
    recovery.to_confirm = Spread::of(to_confirm);
    recovery.to_delivery = Spread::of(to_delivery);
    recovery
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::history::{Delivery, MessageId, Publish, ReadBy};

    #[test]
    fn spreads_take_the_nearest_rank() {
        let ms = Duration::from_millis;
        let s = Spread::of((1..=100).map(ms).collect());
        assert_eq!((s.count, s.p50, s.p99, s.max), (100, ms(51), ms(99), ms(100)));
        assert_eq!(Spread::of(Vec::new()), Spread::default());
    }

    #[test]
    fn recovery_counts_only_what_was_sent_after_the_fault() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut history = Snapshot::default();
        // Sent before the fault, confirmed after it: not a recovery.
        history.publishes.insert(MessageId { producer: 0, seq: 0 }, Publish { sent_at: at(0), settled: Some((Outcome::Confirmed, at(150))) });
        // Sent after the fault, confirmed 400 ms after it.
        history.publishes.insert(MessageId { producer: 0, seq: 1 }, Publish { sent_at: at(120), settled: Some((Outcome::Confirmed, at(500))) });
        history.deliveries.push(Delivery { id: Ok(MessageId { producer: 0, seq: 0 }), redelivered: false, node: "n".into(), by: ReadBy::Consume, at: at(300) });
        let marks = [
            Mark { what: "kill".into(), at: at(100), heal: false },
            Mark { what: "kill".into(), at: at(200), heal: true },
            Mark { what: "late".into(), at: at(900), heal: false },
        ];
        let r = recovery(&history, &marks);
        assert_eq!(r.to_confirm.count, 1);
        assert_eq!(r.to_confirm.max, Duration::from_millis(400));
        assert_eq!(r.to_delivery.max, Duration::from_millis(200));
        assert_eq!((r.never_confirmed, r.never_delivered), (1, 1));
    }
}
