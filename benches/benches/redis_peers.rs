//! `cargo bench -p kelp-benches --bench redis_peers`: kelp's Redis
//! transport beside Python Kombu's Redis transport and a bare LPUSH/BRPOP
//! loop on the `redis` crate (the upper limit), one table per workload and
//! body size with the ratios kelp/kombu and kelp/bare under it, then one
//! JSON line.
//!
//! Environment (all optional):
//! - `KELP_BENCH_REDIS_URL`: Redis, default `redis://127.0.0.1:6379/0`
//! - `KELP_BENCH_MESSAGES`: messages per publish/consume run, default 20000
//! - `KELP_BENCH_SIZES` (or `KELP_BENCH_SIZE`): body sizes, default `100,4096`
//! - `KELP_BENCH_WINDOW`: publishes in flight, default 1000
//! - `KELP_BENCH_PREFETCH`: consumer prefetch, default 1000
//! - `KELP_BENCH_WORKLOADS`: subset of `publish,consume`
//! - `KELP_BENCH_PEERS`: subset of contenders by family (`kelp`, `bare`, `bare-ack`:
//!   the bare loop plus Kombu's four ack-emulation writes, consume only,
//!   `kombu`) or row name (`kelp/ct`, `kombu-batch`)
//! - `KELP_BENCH_PYTHON`: interpreter with `kombu` and `redis` installed, default `python3`
//! - `KELP_BENCH_PAUSE_MS`: pause between runs, default 500
//! - `KELP_BENCH_REPEAT`: runs per contender (in interleaved rounds); the
//!   run with the median msg/s is shown, with the ranges in a note. Default 1
//! - `KELP_BENCH_MARKDOWN=1`: also print the tables as Markdown
//!
//! Redis must be reachable: the bench fails (exit 1) otherwise, and fails
//! if any contender fails, after printing what the others measured.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use kelp_benches::common::{DEFAULT_REDIS_URL, env_list, env_num};
use kelp_benches::report::{Section, markdown_table, run_json_for, text_table};
use kelp_benches::{BenchResult, Flavor, Params, Workload, kombu_peer, redis_bare_peer, redis_contenders, run_on};

/// The targets the issue sets, printed beside the measured ratios.
const TARGET_VS_KOMBU: f64 = 10.0;
const TARGET_VS_BARE: f64 = 0.70;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("redis_peers: {message}");
            ExitCode::FAILURE
        }
    }
}

fn wanted(name: &str) -> Option<Vec<String>> {
    let filter = std::env::var(name).ok()?;
    let wanted: Vec<String> = filter
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    (!wanted.is_empty()).then_some(wanted)
}

/// `url` without its password, for printing.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:**{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// One ratio: of the median rows, and the range of the per-round ratios
/// (the rounds interleave the contenders, so a round's rows ran close in time).
struct Ratio {
    numerator: String,
    denominator: String,
    median: f64,
    low: f64,
    high: f64,
    target: Option<f64>,
}

fn ratio(name_a: &str, a: &[BenchResult], median_a: f64, name_b: &str, b: &[BenchResult], median_b: f64, target: Option<f64>) -> Ratio {
    let per_round: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.rate() / y.rate().max(1e-9)).collect();
    let low = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let high = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ratio {
        numerator: name_a.to_owned(),
        denominator: name_b.to_owned(),
        median: median_a / median_b.max(1e-9),
        low,
        high,
        target,
    }
}

fn run() -> Result<ExitCode, String> {
    let defaults = Params::default();
    let size = match env_list::<usize>("KELP_BENCH_SIZE")? {
        Some(sizes) => sizes[0],
        None => defaults.size,
    };
    let base = Params {
        url: std::env::var("KELP_BENCH_REDIS_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
        messages: env_num("KELP_BENCH_MESSAGES")?.unwrap_or(defaults.messages),
        size,
        window: env_num("KELP_BENCH_WINDOW")?.unwrap_or(defaults.window),
        prefetch: env_num("KELP_BENCH_PREFETCH")?.unwrap_or(defaults.prefetch),
        round_trips: defaults.round_trips,
    };
    base.validate()?;
    if !kelp_benches::common::is_redis_url(&base.url) {
        return Err(format!("KELP_BENCH_REDIS_URL={:?} is not a redis:// URL", base.url));
    }
    let sizes = match env_list::<usize>("KELP_BENCH_SIZES")? {
        Some(sizes) => sizes,
        None => match env_list::<usize>("KELP_BENCH_SIZE")? {
            Some(sizes) => sizes,
            None => vec![100, 4096],
        },
    };
    let repeat: u32 = env_num("KELP_BENCH_REPEAT")?.unwrap_or(1).max(1);
    let pause = Duration::from_millis(env_num("KELP_BENCH_PAUSE_MS")?.unwrap_or(500));
    let markdown = std::env::var("KELP_BENCH_MARKDOWN").is_ok_and(|v| v == "1" || v == "true");
    let workloads: Vec<Workload> = match wanted("KELP_BENCH_WORKLOADS") {
        None => vec![Workload::Publish, Workload::Consume],
        Some(names) => names
            .iter()
            .map(|n| match Workload::parse(n) {
                Some(w @ (Workload::Publish | Workload::Consume)) => Ok(w),
                _ => Err(format!("KELP_BENCH_WORKLOADS: {n:?} is not publish or consume (the Redis bench has no round trip)")),
            })
            .collect::<Result<_, _>>()?,
    };
    let shown_url = shown(&base.url);

    // Fail loudly, before anything else, when there is no Redis.
    let url = base.url.clone();
    run_on(Flavor::CurrentThread, move || async move {
        let mut conn = redis_bare_peer::connect(&url).await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| format!("Redis at {} does not answer PING: {e}", shown(&url)))
    })
    .map_err(|e| format!("Redis is not reachable ({e}); start it or set KELP_BENCH_REDIS_URL"))?;

    let mut contenders = redis_contenders(kombu_peer::python());
    if let Some(names) = wanted("KELP_BENCH_PEERS") {
        contenders.retain(|(c, _)| names.contains(&c.name) || names.contains(&c.family));
        if contenders.is_empty() {
            return Err(format!("KELP_BENCH_PEERS={names:?} selects nothing"));
        }
    }

    eprintln!(
        "redis_peers: {shown_url}, {} msgs, sizes {sizes:?}, window {}, prefetch {}, {repeat} run(s) each; contenders: {}",
        base.messages,
        base.window,
        base.prefetch,
        contenders.iter().map(|(c, _)| c.name.as_str()).collect::<Vec<_>>().join(", ")
    );

    let mut sections = Vec::new();
    let mut all_ratios = Vec::new();
    let mut failures: Vec<(String, String)> = Vec::new();
    for &size in &sizes {
        for &workload in &workloads {
            let params = Params { size, ..base.clone() };
            let mut section = Section {
                workload,
                params: params.clone(),
                rows: Vec::new(),
                notes: Vec::new(),
            };
            let active: Vec<usize> = (0..contenders.len())
                .filter(|&i| contenders[i].1.contains(&workload))
                .collect();
            // Rounds interleave the contenders, so that load drifting on the
            // shared machine hits them alike; the median run is shown.
            let mut runs: Vec<Vec<BenchResult>> = contenders.iter().map(|_| Vec::new()).collect();
            let mut failed = vec![false; contenders.len()];
            for round in 1..=repeat {
                for &index in &active {
                    let contender = &contenders[index].0;
                    if failed[index] {
                        continue;
                    }
                    match contender.run_once("redis_peers", workload, &params, (round, repeat), &mut section, &mut failures) {
                        Some(row) => runs[index].push(row),
                        None => failed[index] = true,
                    }
                    std::thread::sleep(pause);
                }
            }
            // Medians, and the ranges behind them.
            let mut medians: Vec<Option<BenchResult>> = vec![None; contenders.len()];
            for &index in &active {
                let rows = &runs[index];
                if rows.is_empty() {
                    continue;
                }
                let name = &contenders[index].0.name;
                let mut sorted = rows.clone();
                sorted.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
                if sorted.len() > 1 {
                    let cpus: Vec<f64> = rows.iter().filter_map(BenchResult::cpu_us_per_message).collect();
                    let cpu_low = cpus.iter().copied().fold(f64::INFINITY, f64::min);
                    let cpu_high = cpus.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    section.notes.push(format!(
                        "{name}: median of {} runs, {:.0}–{:.0} msg/s, {cpu_low:.1}–{cpu_high:.1} CPU µs/msg",
                        sorted.len(),
                        sorted[0].rate(),
                        sorted[sorted.len() - 1].rate()
                    ));
                }
                let median = sorted.swap_remove(sorted.len() / 2);
                medians[index] = Some(median.clone());
                section.rows.push(median);
            }
            // Ratios: each kelp row against Kombu, Kombu's batch publish, and
            // the bare loop on the same runtime.
            let find = |name: &str| contenders.iter().position(|(c, _)| c.name == name);
            let mut ratios = Vec::new();
            for flavor in ["ct", "mt"] {
                let kelp = format!("{}/{flavor}", kelp_benches::kelp_peer::NAME);
                let Some(k) = find(&kelp).filter(|&k| medians[k].is_some()) else { continue };
                let k_rate = medians[k].as_ref().map_or(0.0, BenchResult::rate);
                let others = [
                    (kombu_peer::NAME.to_owned(), Some(TARGET_VS_KOMBU)),
                    (kombu_peer::BATCH_NAME.to_owned(), None),
                    (format!("{}/{flavor}", redis_bare_peer::NAME), Some(TARGET_VS_BARE)),
                    // The same target against the limit of a consumer that keeps
                    // Kombu's ack emulation (consume only).
                    (format!("{}/{flavor}", redis_bare_peer::ACK_NAME), Some(TARGET_VS_BARE)),
                ];
                for (other, target) in others {
                    let Some(o) = find(&other).filter(|&o| medians[o].is_some()) else { continue };
                    let o_rate = medians[o].as_ref().map_or(0.0, BenchResult::rate);
                    ratios.push(ratio(&kelp, &runs[k], k_rate, &other, &runs[o], o_rate, target));
                }
            }
            let mut table = text_table(&section);
            for r in &ratios {
                table.push_str(&format!(
                    "ratio {} ÷ {}: {:.2}× (per round {:.2}–{:.2}){}\n",
                    r.numerator,
                    r.denominator,
                    r.median,
                    r.low,
                    r.high,
                    match r.target {
                        Some(t) => format!(
                            ", target ≥ {t}×: {}",
                            if r.median >= t { "met" } else { "NOT met" }
                        ),
                        None => String::new(),
                    }
                ));
            }
            println!("{table}");
            for r in ratios {
                all_ratios.push(json!({
                    "workload": workload.as_str(),
                    "size": size,
                    "numerator": r.numerator,
                    "denominator": r.denominator,
                    "ratio": r.median,
                    "per_round_low": r.low,
                    "per_round_high": r.high,
                    "target": r.target,
                }));
            }
            sections.push(section);
        }
    }
    if markdown {
        for section in &sections {
            println!("{}", markdown_table(section));
        }
    }
    let mut report = run_json_for("redis_peers", &shown_url, &sections, &failures);
    if let Some(object) = report.as_object_mut() {
        object.insert("ratios".into(), json!(all_ratios));
        object.insert("repeat".into(), json!(repeat));
    }
    println!("{report}");
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("redis_peers: {} run(s) failed:", failures.len());
        for (name, error) in &failures {
            eprintln!("  {name}: {error}");
        }
        Ok(ExitCode::FAILURE)
    }
}
