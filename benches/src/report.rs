//! Printing results: a text table per workload, the same as Markdown, and
//! one JSON object for the whole run.

use serde_json::{Value, json};

use crate::common::{Params, Workload, is_redis_url};
use kelp_cli::measure::BenchResult;

/// The rows of one workload at one body size.
#[derive(Debug, Clone)]
pub struct Section {
    /// The workload.
    pub workload: Workload,
    /// Its parameters (size included).
    pub params: Params,
    /// One row per contender, in run order.
    pub rows: Vec<BenchResult>,
    /// Remarks printed under the table.
    pub notes: Vec<String>,
}

impl Section {
    /// A title such as `publish, 20000 × 100 B, confirms, 1000 in flight`.
    pub fn title(&self) -> String {
        let p = &self.params;
        if is_redis_url(&p.url) {
            return match self.workload {
                Workload::Publish => format!(
                    "publish (Redis): {} persistent msgs × {} B, each confirmed by its LPUSH reply, up to {} in flight",
                    p.messages, p.size, p.window
                ),
                Workload::Consume => format!(
                    "consume (Redis): {} msgs × {} B, ack per message (bare: BRPOP, no ack), prefetch {}",
                    p.messages, p.size, p.prefetch
                ),
                Workload::RoundTrip => format!("round trip (Redis): {} × {} B", p.round_trips, p.size),
            };
        }
        match self.workload {
            Workload::Publish => format!(
                "publish: {} persistent msgs × {} B, publisher confirms, {} in flight",
                p.messages, p.size, p.window
            ),
            Workload::Consume => format!(
                "consume: {} msgs × {} B, manual ack per message, prefetch {}",
                p.messages, p.size, p.prefetch
            ),
            Workload::RoundTrip => format!(
                "round trip: {} sequential publish→delivery × {} B (same connection, two channels)",
                p.round_trips, p.size
            ),
        }
    }
}

fn latency_cell(row: &BenchResult, quantile: f64) -> String {
    if row.latencies_ns.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.0}", row.latency_us(quantile))
    }
}

fn cpu_cell(row: &BenchResult) -> String {
    row.cpu_us_per_message()
        .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.1}"))
}

/// The section as a fixed-width text table.
pub fn text_table(section: &Section) -> String {
    let mut out = format!("{}\n", section.title());
    out.push_str(&format!(
        "{:<12} {:>10} {:>12} {:>9} {:>9} {:>10}\n",
        "name", "msg/s", "CPU µs/msg", "p50 µs", "p99 µs", "elapsed s"
    ));
    for row in &section.rows {
        out.push_str(&format!(
            "{:<12} {:>10.0} {:>12} {:>9} {:>9} {:>10.3}\n",
            row.name,
            row.rate(),
            cpu_cell(row),
            latency_cell(row, 0.50),
            latency_cell(row, 0.99),
            row.elapsed.as_secs_f64()
        ));
    }
    out.push_str(&format!("latencies: {}\n", section.workload.latency_meaning()));
    for note in &section.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

/// The section as a Markdown table.
pub fn markdown_table(section: &Section) -> String {
    let mut out = format!("**{}**\n\n", section.title());
    out.push_str("| peer | msg/s | CPU µs/msg | p50 µs | p99 µs | elapsed s |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for row in &section.rows {
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {:.3} |\n",
            row.name,
            row.rate(),
            cpu_cell(row),
            latency_cell(row, 0.50),
            latency_cell(row, 0.99),
            row.elapsed.as_secs_f64()
        ));
    }
    out.push_str(&format!("\nLatencies: {}.\n", section.workload.latency_meaning()));
    for note in &section.notes {
        out.push_str(&format!("Note: {note}.\n"));
    }
    out
}

/// One row as JSON: [`BenchResult::to_json`] plus CPU and element counts.
pub fn row_json(row: &BenchResult) -> Value {
    let mut value = row.to_json();
    if let Some(object) = value.as_object_mut() {
        object.insert("size".into(), json!(row.size));
        object.insert("cpu_secs".into(), json!(row.cpu.map(|c| c.as_secs_f64())));
        object.insert("latency_samples".into(), json!(row.latencies_ns.len()));
    }
    value
}

/// The whole run as one JSON object (printed on one line by the bench).
pub fn run_json(url_shown: &str, sections: &[Section], failures: &[(String, String)]) -> Value {
    run_json_for("amqp_peers", url_shown, sections, failures)
}

/// [`run_json`] for the bench named `bench` (`amqp_peers`, `redis_peers`).
pub fn run_json_for(bench: &str, url_shown: &str, sections: &[Section], failures: &[(String, String)]) -> Value {
    json!({
        "bench": bench,
        "url": url_shown,
        "sections": sections.iter().map(|s| json!({
            "workload": s.workload.as_str(),
            "messages": match s.workload { Workload::RoundTrip => s.params.round_trips, _ => s.params.messages },
            "size": s.params.size,
            "window": s.params.window,
            "prefetch": s.params.prefetch,
            "latencies": s.workload.latency_meaning(),
            "notes": s.notes,
            "results": s.rows.iter().map(row_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "failures": failures.iter().map(|(name, error)| json!({"name": name, "error": error})).collect::<Vec<_>>(),
    })
}
