//! `cargo bench -p kelp-benches --bench amqp_peers`: every AMQP peer, every
//! workload, one table per workload and body size, then one JSON line.
//!
//! Environment (all optional):
//! - `KELP_BENCH_URL`: broker, default `amqp://guest:guest@127.0.0.1:5672/%2f`
//! - `KELP_BENCH_MESSAGES`: messages per publish/consume run, default 20000
//! - `KELP_BENCH_SIZES` (or `KELP_BENCH_SIZE`): body sizes, comma-separated, default `100,4096`
//! - `KELP_BENCH_WINDOW`: publishes in flight, default 1000
//! - `KELP_BENCH_PREFETCH`: consumer prefetch, default 1000
//! - `KELP_BENCH_ROUND_TRIPS`: measured round trips, default 2000
//! - `KELP_BENCH_WORKLOADS`: subset of `publish,consume,round_trip`
//! - `KELP_BENCH_PEERS`: subset of contenders by family (`lapin`, `amqprs`,
//!   `kombu`, `kelp`) or row name (`lapin/ct`)
//! - `KELP_BENCH_PYTHON`: interpreter with `kombu` installed, default `python3`
//! - `KELP_BENCH_PAUSE_MS`: pause between runs for the broker to settle, default 500
//! - `KELP_BENCH_REPEAT`: runs per contender (in interleaved rounds); the
//!   run with the median msg/s is shown, with the range in a note. Default 1
//! - `KELP_BENCH_MARKDOWN=1`: also print the tables as Markdown
//!
//! RabbitMQ must be reachable: the bench fails (exit 1) otherwise, and fails
//! if any contender fails, after printing what the others measured.

use std::process::ExitCode;
use std::time::Duration;

use kelp_benches::common::{env_list, env_num};
use kelp_benches::report::{Section, markdown_table, run_json, text_table};
use kelp_benches::{AmqpUrl, BenchResult, Contender, Params, Workload, check_broker, kombu_peer, peer_contenders};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("amqp_peers: {message}");
            ExitCode::FAILURE
        }
    }
}

fn selected<T>(name: &str, all: Vec<T>, key: impl Fn(&T) -> Vec<String>) -> Result<Vec<T>, String> {
    let Ok(filter) = std::env::var(name) else {
        return Ok(all);
    };
    let wanted: Vec<String> = filter
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    let kept: Vec<T> = all
        .into_iter()
        .filter(|item| key(item).iter().any(|k| wanted.contains(k)))
        .collect();
    if kept.is_empty() {
        return Err(format!("{name}={filter:?} selects nothing"));
    }
    Ok(kept)
}

fn run() -> Result<ExitCode, String> {
    let base = Params::from_env()?;
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
    let workloads = selected("KELP_BENCH_WORKLOADS", Workload::ALL.to_vec(), |w| {
        vec![w.as_str().to_owned()]
    })?;
    let shown_url = AmqpUrl::parse(&base.url)?.display();

    // Fail loudly, before anything else, when there is no broker.
    check_broker(&base.url)?;

    // ── Contenders ──────────────────────────────────────────────────────
    // kelp's rows (kelp/ct, kelp/mt) come first in `peer_contenders`.
    let mut contenders: Vec<Contender> = Vec::new();
    contenders.extend(peer_contenders(kombu_peer::python()));
    // ────────────────────────────────────────────────────────────────────
    let contenders = selected("KELP_BENCH_PEERS", contenders, |c| {
        vec![c.name.clone(), c.family.clone()]
    })?;

    eprintln!(
        "amqp_peers: {shown_url}, {} msgs, sizes {sizes:?}, window {}, prefetch {}, {} round trips, {repeat} run(s) each; contenders: {}",
        base.messages,
        base.window,
        base.prefetch,
        base.round_trips,
        contenders
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut sections = Vec::new();
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
            // Rounds interleave the contenders, so that load drifting on the
            // shared machine hits them alike; the median run is shown.
            let mut runs: Vec<Vec<BenchResult>> = contenders.iter().map(|_| Vec::new()).collect();
            let mut failed = vec![false; contenders.len()];
            for round in 1..=repeat {
                for (index, contender) in contenders.iter().enumerate() {
                    if failed[index] {
                        continue;
                    }
                    match contender.run_once("amqp_peers", workload, &params, (round, repeat), &mut section, &mut failures) {
                        Some(row) => runs[index].push(row),
                        None => failed[index] = true,
                    }
                    std::thread::sleep(pause);
                }
            }
            for (contender, mut rows) in contenders.iter().zip(runs) {
                if rows.is_empty() {
                    continue;
                }
                rows.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
                if rows.len() > 1 {
                    section.notes.push(format!(
                        "{}: median of {} runs, {:.0}–{:.0} msg/s",
                        contender.name,
                        rows.len(),
                        rows[0].rate(),
                        rows[rows.len() - 1].rate()
                    ));
                }
                if let Some(note) = (contender.note)(workload) {
                    section.notes.push(note.to_owned());
                }
                let median = rows.swap_remove(rows.len() / 2);
                section.rows.push(median);
            }
            println!("{}", text_table(&section));
            sections.push(section);
        }
    }
    if markdown {
        for section in &sections {
            println!("{}", markdown_table(section));
        }
    }
    println!("{}", run_json(&shown_url, &sections, &failures));
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("amqp_peers: {} run(s) failed:", failures.len());
        for (name, error) in &failures {
            eprintln!("  {name}: {error}");
        }
        Ok(ExitCode::FAILURE)
    }
}
