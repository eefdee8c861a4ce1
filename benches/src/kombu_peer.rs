//! The Python Kombu peer: runs `benches/kombu_peer.py` in a Python
//! interpreter and reads its JSON report; on py-amqp for `amqp://` URLs, on
//! Kombu's Redis transport (redis-py) for `redis://` URLs.
//!
//! The interpreter is `KELP_BENCH_PYTHON` (default `python3`); it only needs
//! `kombu` installed (`pip install kombu`, which brings py-amqp). What the
//! script does for each workload is described at its top; the main
//! difference from the Rust peers is that py-amqp waits for every publisher
//! confirm inside `basic_publish`, so its publish workload has one message
//! in flight whatever the window ([`PUBLISH_NOTE`]).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kelp_cli::measure::BenchResult;
use serde_json::Value;

use crate::common::{AmqpUrl, Params, Workload, is_redis_url};

/// Name of the rows.
pub const NAME: &str = "kombu";

/// What to print beside the Kombu publish row.
pub const PUBLISH_NOTE: &str =
    "kombu publishes with py-amqp's synchronous confirms: one publish in flight (the window does not apply)";

/// How long one run of the script may take (it is killed afterwards).
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(900);

/// The interpreter: `KELP_BENCH_PYTHON`, or `python3`.
pub fn python() -> String {
    std::env::var("KELP_BENCH_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

/// `benches/kombu_peer.py` (or `KELP_BENCH_KOMBU_SCRIPT`).
pub fn script() -> PathBuf {
    std::env::var_os("KELP_BENCH_KOMBU_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kombu_peer.py"))
}

/// Name of the Redis rows that publish through `Producer.batch()`.
pub const BATCH_NAME: &str = "kombu-batch";

/// Run one workload with `params` in `python`. A `redis://` URL runs the
/// script on Kombu's Redis transport (see [`run_redis`]).
pub async fn run(python: &str, workload: Workload, params: &Params) -> Result<BenchResult, String> {
    run_script(python, workload, params, false).await
}

/// Run one workload on Kombu's Redis transport (`params.url` is a
/// `redis://` URL): with `batch`, the publish workload goes through Kombu
/// 5.7's `Producer.batch(max_size=window)` (LPUSHes buffered in a redis-py
/// pipeline, flushed every `window` messages) instead of one LPUSH round
/// trip per `Producer.publish`.
pub async fn run_redis(python: &str, workload: Workload, params: &Params, batch: bool) -> Result<BenchResult, String> {
    if !is_redis_url(&params.url) {
        return Err(format!("kombu: {:?} is not a redis:// URL", params.url));
    }
    run_script(python, workload, params, batch).await
}

async fn run_script(python: &str, workload: Workload, params: &Params, batch: bool) -> Result<BenchResult, String> {
    let mut command = tokio::process::Command::new(python);
    command.arg(script()).arg(workload.as_str());
    if is_redis_url(&params.url) {
        // The URL (credentials included) travels in the environment.
        command.args(["--transport", "redis"]).env("KELP_BENCH_BROKER_URL", &params.url);
        if batch {
            command.arg("--batch");
        }
    } else {
        let url = AmqpUrl::parse(&params.url)?;
        command
            .args(["--host", &url.host])
            .args(["--port", &url.port.to_string()])
            .args(["--user", &url.user])
            .args(["--vhost", &url.vhost])
            // The password travels in the environment, not on the command line.
            .env("KELP_BENCH_PASSWORD", &url.password);
    }
    command
        .args(["--messages", &params.messages.to_string()])
        .args(["--size", &params.size.to_string()])
        .args(["--window", &params.window.to_string()])
        .args(["--prefetch", &params.prefetch.to_string()])
        .args(["--round-trips", &params.round_trips.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| {
        format!("kombu: cannot run {python:?} (set KELP_BENCH_PYTHON to an interpreter with kombu installed): {e}")
    })?;
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("kombu: {} did not finish within {SCRIPT_TIMEOUT:?}", script().display()))?
        .map_err(|e| format!("kombu: waiting for {python:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Option<Value> = stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok());
    match report {
        Some(report) if report.get("error").is_some() => Err(format!(
            "{}{}",
            report["error"].as_str().unwrap_or("kombu: unknown error"),
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("\n{}", stderr.trim_end())
            }
        )),
        Some(report) if output.status.success() => parse_report(&report),
        _ => Err(format!(
            "kombu: {python} {} exited with {}: {}{}",
            script().display(),
            output.status,
            stdout.trim(),
            stderr.trim()
        )),
    }
}

/// Publish workload (see [`run`]); `window` is passed but py-amqp ignores it.
pub async fn publish(
    python: &str,
    url: &str,
    messages: u64,
    size: usize,
    window: usize,
) -> Result<BenchResult, String> {
    let params = Params {
        url: url.to_owned(),
        messages,
        size,
        window,
        ..Params::default()
    };
    run(python, Workload::Publish, &params).await
}

/// Consume workload (see [`run`]).
pub async fn consume(
    python: &str,
    url: &str,
    messages: u64,
    size: usize,
    prefetch: u16,
) -> Result<BenchResult, String> {
    let params = Params {
        url: url.to_owned(),
        messages,
        size,
        prefetch,
        ..Params::default()
    };
    run(python, Workload::Consume, &params).await
}

/// Round-trip workload (see [`run`]).
pub async fn round_trip(
    python: &str,
    url: &str,
    round_trips: u64,
    size: usize,
    prefetch: u16,
) -> Result<BenchResult, String> {
    let params = Params {
        url: url.to_owned(),
        round_trips,
        size,
        prefetch,
        ..Params::default()
    };
    run(python, Workload::RoundTrip, &params).await
}

/// Turn the script's JSON report into a row.
pub fn parse_report(report: &Value) -> Result<BenchResult, String> {
    let field = |name: &str| {
        report
            .get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("kombu: the report has no numeric {name:?}: {report}"))
    };
    let mut latencies_ns: Vec<u64> = report
        .get("latencies_ns")
        .and_then(Value::as_array)
        .map(|values| values.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    latencies_ns.sort_unstable();
    Ok(BenchResult {
        name: report.get("name").and_then(Value::as_str).unwrap_or(NAME).to_owned(),
        messages: field("messages")?,
        size: usize::try_from(field("size")?).unwrap_or(usize::MAX),
        elapsed: Duration::from_nanos(field("elapsed_ns")?),
        latencies_ns,
        cpu: Some(Duration::from_nanos(field("cpu_ns")?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_report() {
        let report = serde_json::json!({
            "name": "kombu", "workload": "publish", "messages": 3, "size": 100,
            "elapsed_ns": 3_000_000, "cpu_ns": 1_000_000, "latencies_ns": [30, 10, 20], "notes": []
        });
        let row = parse_report(&report).unwrap();
        assert_eq!(row.latencies_ns, vec![10, 20, 30]);
        assert_eq!(row.rate().round(), 1000.0);
        assert_eq!(row.cpu_us_per_message().unwrap().round(), 333.0);
        assert!(parse_report(&serde_json::json!({"name": "kombu"})).is_err());
    }
}
