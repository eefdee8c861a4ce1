//! `kelp bench --failover`: kelp and Python Kombu side by side under the
//! same faults, on two local RabbitMQ nodes started for the run.
//!
//! - **kill -9** of the active node;
//! - **SIGSTOP** of the active node (1-second heartbeat on both clients).
//!
//! Each client publishes one message at a time with publisher confirms for
//! the same window. Reported: the time from the fault to its detection
//! (kelp's connection-lost event; Kombu has no such signal), the longest
//! pause between two confirmations after the fault and when it ended
//! (confirmations the broker sent just before dying do not count as a
//! resume).
//!
//! Each run also checks what it promises: every confirmed message is found
//! on one of the nodes afterwards (losses counted, duplicates counted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::io::AsyncBufReadExt;

use kelp::{Connection, Event, FailoverStrategy, Queue};
use kelp_test_support::RabbitNode;

use crate::CliError;

/// The fault injected into the active node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9`.
    Kill,
    /// `SIGSTOP` (a frozen broker).
    Freeze,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::Freeze => "SIGSTOP",
        }
    }
}

/// What one client did through one fault.
#[derive(Debug, Clone)]
pub struct FailoverResult {
    /// `kelp` or `kombu`.
    pub client: String,
    /// The fault.
    pub fault: Fault,
    /// Fault → the client noticed (kelp: its connection-lost event; Kombu:
    /// the first call of its retry errback).
    pub detected_ms: Option<f64>,
    /// Fault → the first confirmation after the client's last retry.
    pub resumed_ms: Option<f64>,
    /// The longest pause in confirmations after the fault (up to the end of
    /// the window when publishing never resumed).
    pub stalled_ms: f64,
    /// Publishes confirmed during the run.
    pub confirmed: usize,
    /// Confirmed messages found on neither node.
    pub lost: usize,
    /// Extra copies found.
    pub duplicates: usize,
}

impl FailoverResult {
    /// The JSON form printed by `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "client": self.client,
            "fault": self.fault.name(),
            "detected_ms": self.detected_ms,
            "resumed_ms": self.resumed_ms,
            "stalled_ms": self.stalled_ms,
            "confirmed": self.confirmed,
            "lost": self.lost,
            "duplicates": self.duplicates,
        })
    }
}

const HEARTBEAT: Duration = Duration::from_secs(1);
const BEFORE_FAULT: Duration = Duration::from_secs(1);
const AFTER_FAULT: Duration = Duration::from_secs(8);
const QUEUE: &str = "kelp-failover-bench";

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn fail(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::failure(format!("failover bench: {what}: {e}"))
}

async fn start_nodes() -> Result<(RabbitNode, RabbitNode), CliError> {
    let a = RabbitNode::start_async().await.map_err(|e| fail("cannot start a RabbitMQ node", format!("{e:?}")))?;
    let b = RabbitNode::start_async().await.map_err(|e| fail("cannot start a RabbitMQ node", format!("{e:?}")))?;
    prepare_queue(&a).await?;
    Ok((a, b))
}

/// Declare the bench queue (as every client declares it) on the node that
/// will be faulted, before any client starts, and make the node write it to
/// disk: RabbitMQ's metadata store does not sync a new durable queue at
/// once, and a node killed a second after declaring it came back without
/// the queue and every message the node had confirmed in it (seen in 2 of 8
/// kill -9 rounds of one run). That is the broker's loss; the bench
/// measures clients. The other node is left alone: declaring there is part
/// of each client's failover.
async fn prepare_queue(node: &RabbitNode) -> Result<(), CliError> {
    let (conn, _) = open_bench_queue(&node.url(), "preparing the queue").await?;
    let _ = conn.close().await;
    node.sync_metadata_async().await.map_err(|e| fail("syncing the node's metadata", format!("{e:?}")))
}

/// Inject `fault`. The harness waits for the killed VM to be gone with
/// blocking calls: `block_in_place` keeps them from taking a worker of the
/// runtime the client under test runs on.
fn inject(node: &RabbitNode, fault: Fault) -> Result<(), CliError> {
    tokio::task::block_in_place(|| inject_now(node, fault))
}

fn inject_now(node: &RabbitNode, fault: Fault) -> Result<(), CliError> {
    match fault {
        Fault::Kill => {
            node.kill();
            Ok(())
        }
        Fault::Freeze => node.freeze().map_err(|e| fail("cannot freeze the node", format!("{e:?}"))),
    }
}

async fn heal(node: &RabbitNode, fault: Fault) -> Result<(), CliError> {
    match fault {
        Fault::Kill => node
            .restart_async()
            .await
            .map_err(|e| fail("cannot restart the node", format!("{e:?}"))),
        Fault::Freeze => node.thaw().map_err(|e| fail("cannot thaw the node", format!("{e:?}"))),
    }
}

/// A connection to the node at `url` (no recovery) and a channel on which
/// the bench queue is declared.
async fn open_bench_queue(url: &str, doing: &str) -> Result<(Connection, kelp::Channel), CliError> {
    let conn = Connection::builder(url).automatic_recovery(false).build().map_err(|e| fail("URL", e))?;
    let channel = conn.default_channel().await.map_err(|e| fail(doing, e))?;
    Queue::new(QUEUE).declare(&channel).await.map_err(|e| fail(doing, e))?;
    Ok((conn, channel))
}

/// Every message id in the bench queue of the node at `url`, with counts.
async fn count_ids(urls: &[String], seen: &mut HashMap<String, usize>) -> Result<(), CliError> {
    for url in urls {
        let (conn, channel) = open_bench_queue(url, "counting").await?;
        let queue = Queue::new(QUEUE);
        while let Some(m) = queue.get(&channel, true).await.map_err(|e| fail("counting", e))? {
            if let Some(id) = m.properties().message_id.as_deref() {
                *seen.entry(id.to_owned()).or_default() += 1;
            }
        }
        let _ = conn.close().await;
    }
    Ok(())
}

/// When confirmed messages are missing, what the faulted node says of its
/// queues and its log's end (to tell a broker's loss from a client's).
async fn report_loss(client: &str, confirmed: &[(String, f64)], seen: &HashMap<String, usize>, node: &RabbitNode) {
    let lost: Vec<&str> = confirmed.iter().filter(|(id, _)| !seen.contains_key(id)).map(|(id, _)| id.as_str()).collect();
    if lost.is_empty() {
        return;
    }
    let queues = node.rabbitmqctl_async(&["list_queues", "name", "durable", "messages"]).await;
    eprintln!(
        "failover bench: {client}: {} confirmed messages missing (first {:?}, last {:?}); the faulted node's queues: {queues:?}\n{}",
        lost.len(),
        lost.first(),
        lost.last(),
        node.log_tail(60)
    );
}

/// The longest pause in confirmations after `fault_at`, up to `end`.
fn longest_pause(times: &[f64], fault_at: f64, end: f64) -> f64 {
    let mut after: Vec<f64> = times.iter().copied().filter(|t| *t > fault_at && *t <= end).collect();
    after.sort_by(f64::total_cmp);
    let mut previous = fault_at;
    let mut longest: f64 = 0.0;
    for t in after {
        longest = longest.max(t - previous);
        previous = t;
    }
    longest.max(end - previous)
}

/// What the client saw of the fault: when it first noticed (its first
/// error after the fault) and when it last had to retry.
#[derive(Clone, Copy, Debug, Default)]
struct Noticed {
    first: Option<f64>,
    last: Option<f64>,
}

impl Noticed {
    fn add(&mut self, at: f64, fault_at: f64) {
        if at > fault_at {
            self.first.get_or_insert(at);
            self.last = Some(self.last.map_or(at, |l: f64| l.max(at)));
        }
    }
}

fn tally(
    client: &str,
    fault: Fault,
    confirmed: &[(String, f64)],
    (fault_at, end): (f64, f64),
    noticed: Noticed,
    seen: &HashMap<String, usize>,
) -> FailoverResult {
    let times: Vec<f64> = confirmed.iter().map(|(_, at)| *at).collect();
    // A confirmation that was on the wire when the broker died can land
    // after the fault; resuming means confirmations after the client gave
    // up on the old connection.
    let resumed = noticed.last.and_then(|mark| {
        times.iter().copied().filter(|t| *t > mark).min_by(f64::total_cmp)
    });
    let stalled = longest_pause(&times, fault_at, end);
    let detected_at = noticed.first;
    FailoverResult {
        client: client.to_owned(),
        fault,
        detected_ms: detected_at.map(|t| (t - fault_at) * 1e3),
        resumed_ms: resumed.map(|t| (t - fault_at) * 1e3),
        stalled_ms: stalled * 1e3,
        confirmed: confirmed.len(),
        lost: confirmed.iter().filter(|(id, _)| !seen.contains_key(id)).count(),
        duplicates: seen.values().map(|n| n.saturating_sub(1)).sum(),
    }
}

/// kelp through one fault; with `standby`, a warm standby connection is
/// kept to the other node (`ConnectionBuilder::warm_standby`).
pub async fn run_kelp(fault: Fault, standby: bool) -> Result<FailoverResult, CliError> {
    let (a, b) = start_nodes().await?;
    let conn = Connection::builder(format!("{};{}", a.url(), b.url()))
        .failover_strategy(FailoverStrategy::PriorityOrder)
        .warm_standby(standby)
        .heartbeat(Some(HEARTBEAT))
        .build()
        .map_err(|e| fail("URL", e))?;
    let mut events = conn.events();
    let lost_at: Arc<Mutex<Vec<f64>>> = Arc::default();
    // Every event with its time, printed with KELP_FAILOVER_TRACE=1.
    let timeline: Arc<Mutex<Vec<(f64, String)>>> = Arc::default();
    let watcher = tokio::spawn({
        let lost_at = lost_at.clone();
        let timeline = timeline.clone();
        async move {
            loop {
                let event = events.recv().await;
                if let Ok(e) = &event {
                    timeline.lock().unwrap_or_else(|e| e.into_inner()).push((now(), format!("{e:?}")));
                }
                match event {
                    Ok(Event::ConnectionLost { .. }) => lost_at.lock().unwrap_or_else(|e| e.into_inner()).push(now()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    });
    let channel = conn.default_channel().await.map_err(|e| fail("connect", e))?;
    Queue::new(QUEUE).declare(&channel).await.map_err(|e| fail("declare", e))?;
    let producer = conn
        .producer()
        .routing_key(QUEUE)
        .build()
        .await
        .map_err(|e| fail("producer", e))?;
    let confirmed: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = tokio::spawn({
        let confirmed = confirmed.clone();
        let stop = stop.clone();
        async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("kelp-{n}");
                if producer.publish(&n).message_id(id.clone()).send().await.is_ok() {
                    confirmed.lock().unwrap_or_else(|e| e.into_inner()).push((id, now()));
                }
                n += 1;
            }
        }
    });
    tokio::time::sleep(BEFORE_FAULT).await;
    let fault_at = now();
    let fault_instant = Instant::now();
    inject(&a, fault)?;
    tokio::time::sleep_until((fault_instant + AFTER_FAULT).into()).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let end = now();
    let _ = tokio::time::timeout(Duration::from_secs(30), publisher).await;
    heal(&a, fault).await?;
    let _ = conn.close().await;
    watcher.abort();
    let mut noticed = Noticed::default();
    for at in lost_at.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        noticed.add(*at, fault_at);
    }
    let mut seen = HashMap::new();
    count_ids(&[a.url(), b.url()], &mut seen).await?;
    let confirmed = confirmed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let client = if standby { "kelp+standby" } else { "kelp" };
    report_loss(client, &confirmed, &seen, &a).await;
    if std::env::var_os("KELP_FAILOVER_TRACE").is_some() {
        let mut lines = timeline.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let first_confirm_after = |t: f64| confirmed.iter().map(|(_, at)| *at).filter(|at| *at > t).fold(f64::INFINITY, f64::min);
        if let Some(&(at, _)) = lines.iter().rev().find(|(_, e)| e.starts_with("Recovered")) {
            lines.push((first_confirm_after(at), "first confirm after Recovered".to_owned()));
        }
        // Long pauses between confirmations after the fault.
        let mut times: Vec<f64> = confirmed.iter().map(|(_, at)| *at).filter(|at| *at > fault_at).collect();
        times.sort_by(f64::total_cmp);
        let mut previous = fault_at;
        for t in times {
            if t - previous > 0.005 {
                lines.push((t, format!("confirm after a {:.1} ms pause", (t - previous) * 1e3)));
            }
            previous = t;
        }
        lines.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (at, event) in lines.iter().filter(|(at, _)| *at >= fault_at - 0.001) {
            eprintln!("{client} {}: {:+9.3} ms {event}", fault.name(), (at - fault_at) * 1e3);
        }
    }
    Ok(tally(client, fault, &confirmed, (fault_at, end), noticed, &seen))
}

/// Python Kombu (py-amqp) through one fault, driven by an embedded script.
pub async fn run_kombu(python: &str, fault: Fault) -> Result<FailoverResult, CliError> {
    let script = std::env::temp_dir().join(format!("kelp-kombu-failover-{}.py", std::process::id()));
    std::fs::write(&script, include_str!("kombu_failover.py")).map_err(|e| fail("cannot write the Kombu script", e))?;
    let (a, b) = start_nodes().await?;
    let urls = format!("{};{}", a.url(), b.url());
    // Python needs about half a second to import Kombu and connect.
    let startup = Duration::from_millis(500);
    let total = startup + BEFORE_FAULT + AFTER_FAULT;
    let mut child = tokio::process::Command::new(python)
        .arg(&script)
        .arg(&urls)
        .arg(QUEUE)
        .arg(total.as_secs_f64().to_string())
        .arg(HEARTBEAT.as_secs_f64().to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(&format!("cannot run {python} (needs `pip install kombu`)"), e))?;
    let stdout = child.stdout.take().ok_or_else(|| fail("Kombu", "no stdout"))?;
    let confirmed: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let errors: Arc<Mutex<Vec<f64>>> = Arc::default();
    let reader = tokio::spawn({
        let confirmed = confirmed.clone();
        let errors = errors.clone();
        async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if let (Some(id), Some(at)) = (value["confirmed"].as_str(), value["at"].as_f64()) {
                    confirmed.lock().unwrap_or_else(|e| e.into_inner()).push((id.to_owned(), at));
                } else if let (Some(error), Some(at)) = (value["error"].as_str(), value["at"].as_f64()) {
                    tracing::debug!(error, at, "kombu retried");
                    errors.lock().unwrap_or_else(|e| e.into_inner()).push(at);
                }
            }
        }
    });
    tokio::time::sleep(startup + BEFORE_FAULT).await;
    let fault_at = now();
    inject(&a, fault)?;
    // A Kombu producer can block for good after a SIGSTOP; give it the same
    // window as kelp, then end it.
    let _ = tokio::time::timeout(AFTER_FAULT + Duration::from_secs(1), child.wait()).await;
    let end = (fault_at + AFTER_FAULT.as_secs_f64()).min(now());
    let _ = child.kill().await;
    let _ = reader.await;
    let _ = std::fs::remove_file(&script);
    heal(&a, fault).await?;
    let mut seen = HashMap::new();
    count_ids(&[a.url(), b.url()], &mut seen).await?;
    let mut noticed = Noticed::default();
    for at in errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        noticed.add(*at, fault_at);
    }
    let confirmed = confirmed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report_loss("kombu", &confirmed, &seen, &a).await;
    Ok(tally("kombu", fault, &confirmed, (fault_at, end), noticed, &seen))
}

/// The interpreter with Kombu: `KELP_BENCH_PYTHON`, else the repository's
/// `.venv-interop`, else `python3`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("KELP_BENCH_PYTHON") {
        return p;
    }
    let venv = std::path::Path::new(".venv-interop/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".to_owned()
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Per fault, the median time to resume of each client over the rounds,
/// and each kelp row's ratio to Kombu's (the target: at most 0.7
/// after kill -9).
fn summary(results: &[FailoverResult]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for fault in [Fault::Kill, Fault::Freeze] {
        let resumed = |client: &str| {
            median(results.iter().filter(|r| r.fault == fault && r.client == client).filter_map(|r| r.resumed_ms).collect())
        };
        let kombu = resumed("kombu");
        for client in ["kelp", "kelp+standby"] {
            let runs = results.iter().filter(|r| r.fault == fault && r.client == client).count();
            if runs == 0 {
                continue;
            }
            let median_ms = resumed(client);
            let ratio = match (median_ms, kombu) {
                (Some(k), Some(p)) if p > 0.0 => Some(k / p),
                _ => None,
            };
            out.push(json!({
                "fault": fault.name(),
                "client": client,
                "runs": runs,
                "resumed_median_ms": median_ms,
                "kombu_resumed_median_ms": kombu,
                "ratio_to_kombu": ratio,
            }));
        }
    }
    out
}

/// Which runs `kelp bench --failover` makes: `KELP_FAILOVER_ROUNDS`
/// (default 1), `KELP_FAILOVER_FAULTS` (`kill`, `stop`; default both),
/// `KELP_FAILOVER_CLIENTS` (`kelp`, `kelp+standby`, `kombu`; default all).
fn plan() -> (usize, Vec<Fault>, Vec<String>) {
    let rounds = std::env::var("KELP_FAILOVER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1usize).max(1);
    let list = |name: &str| -> Option<Vec<String>> {
        std::env::var(name).ok().map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
    };
    let faults = list("KELP_FAILOVER_FAULTS").map_or_else(
        || vec![Fault::Kill, Fault::Freeze],
        |names| {
            [Fault::Kill, Fault::Freeze]
                .into_iter()
                .filter(|f| names.iter().any(|n| n == if *f == Fault::Kill { "kill" } else { "stop" }))
                .collect()
        },
    );
    let clients = list("KELP_FAILOVER_CLIENTS")
        .unwrap_or_else(|| ["kelp", "kelp+standby", "kombu"].map(str::to_owned).to_vec());
    (rounds, faults, clients)
}

/// Run both clients through both faults and print the comparison.
pub async fn run(json_out: bool) -> Result<(), CliError> {
    let python = python();
    let (rounds, faults, clients) = plan();
    let mut results = Vec::new();
    for _ in 0..rounds {
        for &fault in &faults {
            for client in &clients {
                results.push(match client.as_str() {
                    "kelp" => run_kelp(fault, false).await?,
                    "kelp+standby" => run_kelp(fault, true).await?,
                    "kombu" => run_kombu(&python, fault).await?,
                    other => return Err(fail("KELP_FAILOVER_CLIENTS", format!("unknown client {other}"))),
                });
            }
        }
    }
    let summary = summary(&results);
    let ms = |v: Option<f64>, none: &str| v.map_or_else(|| none.to_owned(), |v| format!("{v:.0}"));
    if json_out {
        let report = json!({
            "scenario": "failover",
            "heartbeat_secs": HEARTBEAT.as_secs_f64(),
            "results": results.iter().map(FailoverResult::to_json).collect::<Vec<_>>(),
            "summary": summary,
        });
        println!("{report}");
    } else {
        println!("kelp bench --failover: two local RabbitMQ nodes, heartbeat {HEARTBEAT:?}, publishes with confirms");
        println!(
            "{:<12} {:<9} {:>12} {:>11} {:>11} {:>10} {:>6} {:>11}",
            "client", "fault", "detected ms", "stalled ms", "resumed ms", "confirmed", "lost", "duplicates"
        );
        for r in &results {
            println!(
                "{:<12} {:<9} {:>12} {:>11.0} {:>11} {:>10} {:>6} {:>11}",
                r.client,
                r.fault.name(),
                ms(r.detected_ms, "-"),
                r.stalled_ms,
                ms(r.resumed_ms, "never"),
                r.confirmed,
                r.lost,
                r.duplicates
            );
        }
        for line in &summary {
            let ms = |v: &serde_json::Value| v.as_f64().map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            println!(
                "{} {}: median resumed {} ms over {} run(s), Kombu {} ms, ratio {}{}",
                line["fault"].as_str().unwrap_or(""),
                line["client"].as_str().unwrap_or(""),
                ms(&line["resumed_median_ms"]),
                line["runs"],
                ms(&line["kombu_resumed_median_ms"]),
                line["ratio_to_kombu"].as_f64().map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                if line["fault"] == "kill -9" { " (target <= 0.7)" } else { "" },
            );
        }
    }
    if let Some(r) = results.iter().find(|r| r.client.starts_with("kelp") && r.lost > 0) {
        return Err(CliError::failure(format!("kelp lost {} confirmed messages under {}", r.lost, r.fault.name())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{longest_pause, tally, Fault, Noticed};
    use std::collections::HashMap;

    #[test]
    fn a_late_confirm_right_after_the_fault_is_not_the_resume() {
        // Fault at 10.0; a confirm already on the wire lands at 10.001, the
        // client notices at 10.05, then nothing until 12.5.
        let confirmed: Vec<(String, f64)> =
            [9.9, 10.001, 12.5, 12.51].iter().enumerate().map(|(i, t)| (format!("m{i}"), *t)).collect();
        let mut noticed = Noticed::default();
        noticed.add(10.05, 10.0);
        let seen: HashMap<String, usize> = [("m0", 1), ("m1", 2), ("m2", 1)].map(|(k, v)| (k.to_owned(), v)).into();
        let r = tally("kelp", Fault::Kill, &confirmed, (10.0, 15.0), noticed, &seen);
        assert_eq!(r.resumed_ms.map(|v| v.round()), Some(2500.0));
        assert_eq!(r.detected_ms.map(|v| v.round()), Some(50.0));
        assert!((r.stalled_ms - 2499.0).abs() < 1e-6);
        assert_eq!((r.lost, r.duplicates), (1, 1));
    }

    #[test]
    fn publishing_that_never_resumes_stalls_to_the_end() {
        assert!((longest_pause(&[9.0, 10.2], 10.0, 18.0) - 7.8).abs() < 1e-9);
        let r = tally("kombu", Fault::Freeze, &[], (10.0, 18.0), Noticed::default(), &HashMap::new());
        assert_eq!((r.detected_ms, r.resumed_ms), (None, None));
    }
}
