//! What every row of `kelp bench` shares, whichever peer it measures: the
//! workload's limits ([`WINDOW`], [`SAMPLE_EVERY`]), the result of one row
//! ([`BenchResult`]) and the tools that measure it (process CPU time, a
//! progress bar fed by a counter, names unique to a run).
//!
//! The rows themselves live above it: kelp's and the `tokio::sync::mpsc`
//! anchor in [`crate::bench`], the bare Redis loop in [`crate::bare_redis`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

/// Publishes kept in flight before waiting for the oldest confirm; also the
/// consumer's prefetch.
pub(crate) const WINDOW: usize = 1_000;

/// What one contender achieved.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Contender name, e.g. `kelp` or `tokio-mpsc`.
    pub name: String,
    /// Messages received.
    pub messages: u64,
    /// Body size.
    pub size: usize,
    /// First publish to last receive.
    pub elapsed: Duration,
    /// Send-to-receive latency of sampled messages (one in 8), sorted, in
    /// nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Process CPU time (user + system) spent during the run, when known.
    pub cpu: Option<Duration>,
}

impl BenchResult {
    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Megabytes (10^6) of body per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.rate() * self.size as f64 / 1e6
    }

    /// The latency at `quantile` (0..=1) in microseconds.
    pub fn latency_us(&self, quantile: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        let last = self.latencies_ns.len() - 1;
        let index = ((last as f64) * quantile).round() as usize;
        self.latencies_ns[index.min(last)] as f64 / 1_000.0
    }

    /// CPU microseconds per message, when CPU time is known.
    pub fn cpu_us_per_message(&self) -> Option<f64> {
        self.cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.messages.max(1) as f64)
    }

    /// The result as JSON (the `--json` format's entry).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "messages": self.messages,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "messages_per_sec": self.rate(),
            "mb_per_sec": self.mb_per_sec(),
            "latency_us": {
                "p50": self.latency_us(0.50),
                "p90": self.latency_us(0.90),
                "p99": self.latency_us(0.99),
                "p999": self.latency_us(0.999),
                "max": self.latency_us(1.0),
            },
            "cpu_us_per_message": self.cpu_us_per_message(),
        })
    }
}

/// Process CPU time (user + system) from /proc, in clock ticks of 10 ms.
/// Coarse, but runs last seconds; `None` where /proc is missing.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// One message in this many carries its send time: reading the clock for
/// every message would cost more than a memory:// publish and skew both
/// contenders alike. Percentiles over the sample are as good.
pub(crate) const SAMPLE_EVERY: u64 = 8;

/// A progress bar of `total` messages for the row `name`, drawn on stderr
/// when `visible`.
pub(crate) fn progress(total: u64, name: &str, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{msg:12} {bar:40} {pos}/{len} {per_sec}") {
        bar.set_style(style);
    }
    bar.set_message(name.to_owned());
    bar
}

/// Update a progress bar from a shared counter until the run finishes.
pub(crate) fn spawn_ticker(bar: ProgressBar, counter: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let n = counter.load(Ordering::Relaxed);
            bar.set_position(n);
            if bar.length().is_some_and(|len| n >= len) {
                bar.finish_and_clear();
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Nanoseconds since the Unix epoch, to make names unique between runs.
pub(crate) fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
