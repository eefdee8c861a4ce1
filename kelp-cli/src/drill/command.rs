//! `kelp drill`: the drill against the user's own brokers, with live
//! progress on stderr, and the checker's table (or JSON) at the end. Exits
//! 0 only when no confirmed message was lost and none appeared from nowhere.

use std::time::{Duration, Instant};

use clap::Args;

use super::config::DrillConfig;
use super::faults::FaultLog;
use super::run::Drill;
use crate::CliError;

/// Options of `kelp drill`.
#[derive(Args, Debug, Clone)]
pub struct DrillArgs {
    /// Broker URLs, `;`-separated for failover (default `$KELP_URL`, else memory://).
    #[arg(long, env = "KELP_URL", default_value = "memory://")]
    pub url: String,
    /// The queue the drill owns: declared durable and purged at the start.
    #[arg(long, default_value = "kelp.drill")]
    pub queue: String,
    /// Seconds of publishing (then the drill drains and checks).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Publishing connections.
    #[arg(long, default_value_t = 2)]
    pub producers: u32,
    /// Consuming connections (basic.consume; half at prefetch 1).
    #[arg(long, default_value_t = 2)]
    pub consumers: u32,
    /// Connections reading with basic.get.
    #[arg(long, default_value_t = 1)]
    pub getters: u32,
    /// Messages per second over all producers (0: unpaced).
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Body size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Declare the queue as a quorum queue (RabbitMQ).
    #[arg(long)]
    pub quorum: bool,
    /// A shell command that breaks something (run with `sh -c`), every --fault-every seconds.
    #[arg(long)]
    pub fault_cmd: Option<String>,
    /// Seconds between two runs of --fault-cmd.
    #[arg(long, default_value_t = 30)]
    pub fault_every: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Run `kelp drill`.
pub async fn run(args: DrillArgs) -> Result<(), CliError> {
    let config = DrillConfig::new(args.url.clone(), args.queue.clone())
        .quorum(args.quorum)
        .clients(args.producers, args.consumers, args.getters)
        .rate((args.rate > 0).then_some(args.rate))
        .size(args.size);
    let drill = Drill::start(config).await?;
    let faults = drill.faults();
    let fault_task = args.fault_cmd.clone().map(|cmd| tokio::spawn(run_faults(cmd, Duration::from_secs(args.fault_every.max(1)), faults.clone())));
    let started = Instant::now();
    let end = started + Duration::from_secs(args.duration);
    let mut interrupted = false;
    loop {
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::select! {
            () = tick => {}
            _ = tokio::signal::ctrl_c() => interrupted = true,
        }
        let p = drill.progress();
        eprintln!(
            "[{:>5.0}s] sent {} confirmed {} refused {} indeterminate {} delivered {} failovers {} | producer on {} | consumer on {}",
            started.elapsed().as_secs_f64(),
            p.sent,
            p.confirmed,
            p.refused,
            p.indeterminate,
            p.delivered,
            p.failovers,
            p.producer_node,
            p.consumer_node
        );
        if interrupted || Instant::now() >= end {
            break;
        }
    }
    if let Some(task) = fault_task {
        task.abort();
    }
    eprintln!("drill: publishing stopped; reading what is left and checking every message");
    let report = drill.finish().await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.passed() {
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "the drill lost {} confirmed messages and read {} it never sent",
            report.verdict.lost.len(),
            report.verdict.unexpected.len()
        )))
    }
}

/// Run the user's fault command every `every`, marking each run.
async fn run_faults(cmd: String, every: Duration, faults: FaultLog) {
    let mut round = 0u32;
    loop {
        tokio::time::sleep(every).await;
        round += 1;
        let what = format!("--fault-cmd #{round}");
        faults.fault(what.clone());
        match tokio::process::Command::new("sh").arg("-c").arg(&cmd).status().await {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("drill: the fault command exited with {status}"),
            Err(e) => eprintln!("drill: cannot run the fault command: {e}"),
        }
        faults.heal(what);
    }
}
