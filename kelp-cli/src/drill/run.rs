//! [`Drill`]: start the workload, let faults happen (marked in its
//! [`FaultLog`]), then finish: stop publishing, let the consumers read what
//! is left, drain the queue, and check every message.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;

use super::checker::check;
use super::config::DrillConfig;
use super::faults::FaultLog;
use super::history::History;
use super::report::Report;
use super::resources::{Sample, growth};
use super::stats::{publish_latency, recovery};
use super::workload::{Progress, Workload, drain};

/// A drill in progress.
#[derive(Debug)]
pub struct Drill {
    config: DrillConfig,
    run: String,
    history: Arc<History>,
    faults: FaultLog,
    workload: Option<WorkloadSlot>,
    started: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    sampler: JoinHandle<()>,
}

struct WorkloadSlot(Workload);

impl std::fmt::Debug for WorkloadSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Workload")
    }
}

impl Drill {
    /// Declare the drill's queue (purging what an earlier run left), and
    /// start its producers and consumers.
    pub async fn start(config: DrillConfig) -> kelp::Result<Drill> {
        let run = format!("d{:08x}", fastrand_u32());
        let setup = config.connect(&format!("drill-{run}-setup"))?;
        let channel = setup.default_channel().await?;
        let queue = config.queue();
        queue.declare(&channel).await?;
        queue.purge(&channel).await?;
        let _ = setup.close().await;

        let started = Instant::now();
        let history = Arc::new(History::default());
        let samples = Arc::new(Mutex::new(vec![Sample::take(started)]));
        let sampler = {
            let samples = samples.clone();
            let history = history.clone();
            let every = config.sample_every;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let sample = Sample { history_kib: history.footprint_kib(), ..Sample::take(started) };
                    samples.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
                }
            })
        };
        let workload = Workload::start(&config, &run, history.clone()).await?;
        Ok(Drill {
            config,
            run,
            history,
            faults: FaultLog::default(),
            workload: Some(WorkloadSlot(workload)),
            started,
            samples,
            sampler,
        })
    }

    /// Where faults are marked, to measure recovery from each.
    pub fn faults(&self) -> FaultLog {
        self.faults.clone()
    }

    /// The run's name: the prefix of its message ids.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The totals now.
    pub fn progress(&self) -> Progress {
        self.workload.as_ref().map(|w| w.0.progress()).unwrap_or_default()
    }

    /// Stop publishing, let the consumers finish, drain the queue, check.
    pub async fn finish(mut self) -> kelp::Result<Report> {
        let Some(WorkloadSlot(mut workload)) = self.workload.take() else {
            return Err(kelp::Error::from_handler("the drill was already finished"));
        };
        workload.stop_producers().await;
        workload.stop_consumers(self.config.quiet, self.config.drain_timeout).await;
        let progress = workload.progress();
        workload.close().await;
        let drained = drain(&self.config, &self.run, &self.history, self.config.drain_timeout).await?;
        self.sampler.abort();
        let mut samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        samples.push(Sample { history_kib: self.history.footprint_kib(), ..Sample::take(self.started) });
        let history = self.history.snapshot();
        let marks = self.faults.marks();
        let brokers = kelp::BrokerUrl::parse_list(&self.config.url)
            .map(|urls| urls.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(";"))
            .unwrap_or_default();
        // Warm-up: the first quarter of the run, at least one sampling period.
        let warm_up = (self.started.elapsed() / 4).max(self.config.sample_every);
        Ok(Report {
            run: self.run,
            brokers,
            queue: self.config.queue.clone(),
            elapsed: self.started.elapsed(),
            verdict: check(&history),
            recovery: recovery(&history, &marks),
            latency: publish_latency(&history),
            faults: marks,
            progress,
            drained,
            growth: growth(&samples, warm_up),
            samples,
        })
    }
}

fn fastrand_u32() -> u32 {
    // The run's name only has to differ from other runs on the same queue.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}
