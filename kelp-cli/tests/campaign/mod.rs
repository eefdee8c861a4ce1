//! What the reliability campaign's scenarios share: how many fault rounds
//! (`KELP_CAMPAIGN_ROUNDS`, 2 in the test suite, 20 in the long form), the
//! drill's settings, running rounds of a fault, and reading the report.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use kelp_cli::drill::{Drill, DrillConfig, FaultLog, Progress, Report};

/// kelp's log on stderr, as `RUST_LOG` says (nothing without it), with
/// times, to line up with the fault marks.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// The short form's rounds per scenario, unless `KELP_CAMPAIGN_ROUNDS` says.
static DEFAULT_ROUNDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(2);

/// Set the short form's rounds for this test binary (its scenarios cost
/// more or less of CI's time).
#[allow(dead_code)]
pub fn set_default_rounds(n: u32) {
    DEFAULT_ROUNDS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// Fault rounds per scenario: `KELP_CAMPAIGN_ROUNDS`, else the binary's
/// default (the test suite's short form; `scripts/campaign.sh` runs the
/// long one).
pub fn rounds() -> u32 {
    std::env::var("KELP_CAMPAIGN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| DEFAULT_ROUNDS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Pause between rounds, so that traffic settles on the new topology.
pub fn between_rounds() -> Duration {
    Duration::from_secs(std::env::var("KELP_CAMPAIGN_PAUSE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(3))
}

/// The drill as the campaign runs it: a steady stream (not a flood: the
/// brokers share 2 cores with everything else), every kind of reader.
pub fn drill(url: impl Into<String>, queue: &str) -> DrillConfig {
    DrillConfig::new(url, queue)
        .clients(2, 2, 1)
        .rate(Some(300))
        .drain(Duration::from_secs(5), Duration::from_secs(180))
        .sample_every(Duration::from_secs(2))
}

/// Run `round` `rounds()` times while the drill runs, with a pause before
/// each (it is given the drill's progress, which says where the clients
/// are), then finish the drill and print its report.
pub async fn campaign<F, Fut>(name: &str, config: DrillConfig, mut round: F) -> Report
where
    F: FnMut(u32, FaultLog, Progress) -> Fut,
    Fut: Future<Output = ()>,
{
    init_logs();
    let drill = Drill::start(config).await.unwrap_or_else(|e| panic!("{name}: the drill cannot start: {e}"));
    let faults = drill.faults();
    tokio::time::sleep(between_rounds()).await;
    for n in 0..rounds() {
        round(n, faults.clone(), drill.progress()).await;
        tokio::time::sleep(between_rounds()).await;
    }
    let report = drill.finish().await.unwrap_or_else(|e| panic!("{name}: the drill cannot finish: {e}"));
    eprintln!("== {name}\n{}", report.to_text());
    record(name, &report);
    report
}

/// One JSON line per scenario on stdout, `CAMPAIGN {...}`, which
/// `scripts/campaign.sh` collects.
pub fn record(name: &str, report: &Report) {
    let mut json = report.to_json();
    json["scenario"] = name.into();
    println!("CAMPAIGN {json}");
}

/// Lost = 0 and unexpected = 0, and the traffic carried on after every fault.
pub fn assert_nothing_lost(name: &str, report: &Report) {
    if let Err(why) = check_nothing_lost(name, report) {
        panic!("{why}");
    }
}

/// [`assert_nothing_lost`] as a result, for runs that go on to the next
/// scenario.
pub fn check_nothing_lost(name: &str, report: &Report) -> Result<(), String> {
    let text = report.to_text();
    if !report.passed() {
        return Err(format!("{name}: lost or unexpected messages\n{text}"));
    }
    if report.verdict.confirmed == 0 {
        return Err(format!("{name}: nothing was confirmed at all\n{text}"));
    }
    if report.recovery.never_confirmed > 0 {
        return Err(format!("{name}: publishing never resumed after a fault\n{text}"));
    }
    if report.recovery.never_delivered > 0 {
        return Err(format!("{name}: consuming never resumed after a fault\n{text}"));
    }
    Ok(())
}
