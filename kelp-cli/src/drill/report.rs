//! The end of a drill: the checker's verdict, recovery and latency, and the
//! footprint over time, as a table for people and as JSON for scripts.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

use super::checker::Verdict;
use super::faults::Mark;
use super::resources::{Growth, Sample};
use super::stats::{Recovery, Spread};
use super::workload::Progress;

/// Everything a drill found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// The run's name (the prefix of its message ids).
    pub run: String,
    /// The brokers, passwords masked.
    pub brokers: String,
    /// The queue.
    pub queue: String,
    /// How long the drill ran (publishing, then the drain).
    pub elapsed: Duration,
    /// The checker's counts.
    pub verdict: Verdict,
    /// Recovery from each fault.
    pub recovery: Recovery,
    /// Publish → confirm.
    pub latency: Spread,
    /// The faults marked during the run.
    pub faults: Vec<Mark>,
    /// The last totals (failovers, queues declared again).
    pub progress: Progress,
    /// Messages still in the queue at the end, read by the final drain.
    pub drained: usize,
    /// The drill's memory, descriptors and tasks over time.
    pub samples: Vec<Sample>,
    /// Their growth after warm-up.
    pub growth: Option<Growth>,
}

impl Report {
    /// The drill passed: lost = 0 and unexpected = 0.
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }

    /// As one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "run": self.run,
            "brokers": self.brokers,
            "queue": self.queue,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "checker": self.verdict.to_json(&self.run),
            "faults": self.faults.iter().filter(|m| !m.heal).count(),
            "recovery": {
                "to_confirm": self.recovery.to_confirm.to_json(),
                "to_delivery": self.recovery.to_delivery.to_json(),
                "never_confirmed": self.recovery.never_confirmed,
                "never_delivered": self.recovery.never_delivered,
            },
            "publish_latency": self.latency.to_json(),
            "failovers": self.progress.failovers,
            "queues_declared_again": self.progress.recreated,
            "stale_acks": self.progress.stale_acks,
            "drained": self.drained,
            "samples": self.samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
            "growth": self.growth.map(|g| json!({"rss": g.rss, "fds": g.fds, "tasks": g.tasks})),
        })
    }

    /// As a table.
    pub fn to_text(&self) -> String {
        let v = &self.verdict;
        let pct = |part: usize, whole: usize| format!("{part} ({:.3}%)", Verdict::fraction(part, whole) * 100.0);
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let spread = |s: &Spread| {
            if s.count == 0 { "-".to_owned() } else { format!("p50 {}, p99 {}, max {} ({} faults)", ms(s.p50), ms(s.p99), ms(s.max), s.count) }
        };
        let duplicates: usize = v.duplicated.values().map(|n| n - 1).sum();
        let mut out = String::new();
        let _ = writeln!(out, "drill {} on {} (queue {}), {:.1} s", self.run, self.brokers, self.queue, self.elapsed.as_secs_f64());
        let _ = writeln!(out, "  sent          {}", v.sent);
        let _ = writeln!(out, "  confirmed     {}", v.confirmed);
        let _ = writeln!(out, "  refused       {}", v.refused);
        let _ = writeln!(out, "  indeterminate {}", v.indeterminate);
        let _ = writeln!(out, "  read          {} distinct, {} deliveries, {} left for the drain", v.read, v.deliveries, self.drained);
        let _ = writeln!(out, "  lost          {}", pct(v.lost.len(), v.confirmed));
        let _ = writeln!(out, "  unexpected    {}", v.unexpected.len());
        let _ = writeln!(out, "  duplicated    {} ids, {} extra deliveries", pct(v.duplicated.len(), v.read), duplicates);
        let _ = writeln!(out, "  recovered     {} of the indeterminate", pct(v.recovered, v.indeterminate));
        if v.foreign > 0 {
            let _ = writeln!(out, "  foreign       {} messages not of this run", v.foreign);
        }
        let faults = self.faults.iter().filter(|m| !m.heal).count();
        let _ = writeln!(
            out,
            "  faults        {faults}, failovers {}, queues declared again {}, stale acks {}",
            self.progress.failovers, self.progress.recreated, self.progress.stale_acks
        );
        let _ = writeln!(out, "  to confirm    {}", spread(&self.recovery.to_confirm));
        let _ = writeln!(out, "  to delivery   {}", spread(&self.recovery.to_delivery));
        if self.recovery.never_confirmed + self.recovery.never_delivered > 0 {
            let _ = writeln!(out, "  never resumed {} faults (confirms), {} (deliveries)", self.recovery.never_confirmed, self.recovery.never_delivered);
        }
        let _ = writeln!(out, "  publish       {}", spread(&self.latency).replace(" faults)", " confirms)"));
        if let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) {
            let _ = writeln!(
                out,
                "  footprint     rss {} → {} KiB (the drill's record {} KiB of it), fds {} → {}, tasks {} → {}",
                first.rss_kib, last.rss_kib, last.history_kib, first.fds, last.fds, first.tasks, last.tasks
            );
        }
        if let Some(g) = self.growth {
            let _ = writeln!(out, "  growth        after warm-up: memory ×{:.2} (record excluded), fds ×{:.2}, tasks ×{:.2}", g.rss, g.fds, g.tasks);
        }
        let _ = writeln!(out, "  verdict       {}", if self.passed() { "PASS (lost 0, unexpected 0)" } else { "FAIL" });
        out
    }
}
