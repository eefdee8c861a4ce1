//! The drill's own footprint over time — resident memory, open file
//! descriptors, live tokio tasks — sampled so that a soak shows whether it
//! stays flat after warm-up.

use std::time::{Duration, Instant};

use serde_json::json;

/// One sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Since the drill started.
    pub elapsed: Duration,
    /// Resident set size, in KiB (`/proc/self/status` VmRSS).
    pub rss_kib: u64,
    /// Open file descriptors (`/proc/self/fd`).
    pub fds: usize,
    /// Tasks alive on the runtime.
    pub tasks: usize,
    /// What the drill's own record of every message takes (an estimate of
    /// its heap, in KiB): it grows with every message by design, so the
    /// growth of kelp's memory is the resident size less this.
    pub history_kib: u64,
}

impl Sample {
    /// The process now.
    pub fn take(started: Instant) -> Sample {
        Sample {
            elapsed: started.elapsed(),
            rss_kib: rss_kib().unwrap_or(0),
            fds: std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
            tasks: tokio::runtime::Handle::try_current().map(|h| h.metrics().num_alive_tasks()).unwrap_or(0),
            history_kib: 0,
        }
    }

    /// Resident memory less the drill's record: what kelp and the rest of
    /// the process hold.
    pub fn own_kib(&self) -> u64 {
        self.rss_kib.saturating_sub(self.history_kib)
    }

    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "rss_kib": self.rss_kib,
            "history_kib": self.history_kib,
            "fds": self.fds,
            "tasks": self.tasks,
        })
    }
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Growth after warm-up: the largest value of the last third of the
/// samples over the largest of the first third after `warm_up` (1.0 = flat).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Growth {
    /// Resident memory less the drill's record ([`Sample::own_kib`]).
    pub rss: f64,
    /// File descriptors.
    pub fds: f64,
    /// Tasks.
    pub tasks: f64,
}

/// How the footprint grew after `warm_up`; `None` with too few samples.
pub fn growth(samples: &[Sample], warm_up: Duration) -> Option<Growth> {
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.elapsed >= warm_up).collect();
    if steady.len() < 3 {
        return None;
    }
    let third = steady.len() / 3;
    let (early, late) = (&steady[..third.max(1)], &steady[steady.len() - third.max(1)..]);
    let ratio = |f: fn(&Sample) -> f64| {
        let before = early.iter().map(|s| f(s)).fold(0.0, f64::max).max(1.0);
        late.iter().map(|s| f(s)).fold(0.0, f64::max) / before
    };
    Some(Growth {
        rss: ratio(|s| s.own_kib() as f64),
        fds: ratio(|s| s.fds as f64),
        tasks: ratio(|s| s.tasks as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_compares_the_last_third_with_the_first() {
        let s = |secs: u64, rss: u64| Sample { elapsed: Duration::from_secs(secs), rss_kib: rss, fds: 10, tasks: 5, history_kib: 0 };
        let flat = [s(0, 1), s(10, 100), s(20, 110), s(30, 100), s(40, 105), s(50, 108), s(60, 100)];
        let g = growth(&flat, Duration::from_secs(10)).unwrap();
        assert!(g.rss <= 1.0, "{g:?}");
        assert_eq!(g.fds, 1.0);
        let leaking = [s(10, 100), s(20, 150), s(30, 200), s(40, 250), s(50, 300), s(60, 350)];
        assert!(growth(&leaking, Duration::ZERO).unwrap().rss > 2.0);
        assert!(growth(&flat[..2], Duration::ZERO).is_none());
        assert!(Sample::take(Instant::now()).rss_kib > 0);
    }
}
