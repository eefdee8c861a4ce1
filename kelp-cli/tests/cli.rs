//! The `kelp` command line: its options and output format are a contract.
//!
//! `memory://` lives inside one process, so publish/consume round trips run
//! the commands in-process through the library; the binary itself is run for
//! what scripts see (exit codes, stderr, `--json`).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use kelp_cli::commands::{ConsumeArgs, PublishArgs};
use serde_json::{Value, json};

#[derive(Parser)]
struct Publish {
    #[command(flatten)]
    args: PublishArgs,
}

#[derive(Parser)]
struct Consume {
    #[command(flatten)]
    args: ConsumeArgs,
}

/// A memory:// URL on a virtual host of its own, so tests never share queues.
fn url() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("memory://localhost/cli-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

async fn publish(url: &str, args: &[&str]) {
    let mut argv = vec!["publish", "--url", url];
    argv.extend_from_slice(args);
    let parsed = Publish::try_parse_from(argv).expect("valid publish arguments");
    kelp_cli::commands::publish(parsed.args).await.expect("publish succeeds");
}

async fn consume(url: &str, args: &[&str]) -> Result<Vec<Value>, kelp_cli::CliError> {
    let mut argv = vec!["consume", "--url", url];
    argv.extend_from_slice(args);
    let parsed = Consume::try_parse_from(argv).expect("valid consume arguments");
    let mut out = Vec::new();
    let result = kelp_cli::commands::consume_to(parsed.args, &mut out).await;
    let lines = String::from_utf8(out)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is a JSON object"))
        .collect();
    result.map(|()| lines)
}

#[tokio::test]
async fn publish_then_consume_prints_one_json_object_per_message() {
    let url = url();
    publish(&url, &["--queue", "jobs", "--header", "trace=abc", "--count", "3", r#"{"n": [1, 2.5], "s": "é"}"#]).await;
    let lines = consume(&url, &["--queue", "jobs", "--count", "3", "--timeout", "10"]).await.unwrap();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(
            line,
            &json!({
                "body": {"n": [1, 2.5], "s": "é"},
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "headers": {"trace": "abc"},
                "properties": {"delivery_mode": 2, "priority": 0},
                "delivery_info": {"exchange": "", "routing_key": "jobs", "redelivered": false},
            })
        );
    }
    // Everything was acked: nothing is left.
    let err = consume(&url, &["--queue", "jobs", "--count", "1", "--timeout", "0.2"]).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn each_serializer_and_compression_decodes_to_json() {
    let url = url();
    let cases: &[(&[&str], &str, Value)] = &[
        (&["--serializer", "msgpack"], r#"{"a": [1, null]}"#, json!({"a": [1, null]})),
        (&["--serializer", "yaml"], r#"{"a": true}"#, json!({"a": true})),
        (&["--serializer", "text"], "plain words", json!("plain words")),
        (&["--serializer", "raw"], "raw", json!("cmF3")),
        (&["--compression", "zlib"], r#"[1, 2, 3]"#, json!([1, 2, 3])),
        (&["--compression", "zstd", "--serializer", "text"], "squeezed", json!("squeezed")),
    ];
    for (options, body, expected) in cases {
        let mut args = vec!["--queue", "mixed"];
        args.extend_from_slice(options);
        args.push(body);
        publish(&url, &args).await;
        let lines = consume(&url, &["--queue", "mixed", "--count", "1", "--timeout", "10"]).await.unwrap();
        assert_eq!(&lines[0]["body"], expected, "{options:?}");
    }
}

#[tokio::test]
async fn topic_exchange_binding_and_transient_messages() {
    let url = url();
    publish(
        &url,
        &["--exchange", "logs", "--exchange-type", "topic", "--routing-key", "app.error", "--queue", "errors", "--transient", "1"],
    )
    .await;
    let lines = consume(&url, &["--queue", "errors", "--count", "1", "--timeout", "10"]).await.unwrap();
    assert_eq!(lines[0]["delivery_info"]["exchange"], "logs");
    assert_eq!(lines[0]["delivery_info"]["routing_key"], "app.error");
    assert_eq!(lines[0]["properties"]["delivery_mode"], 1);
}

#[tokio::test]
async fn a_refused_content_type_fails_and_the_message_stays() {
    let url = url();
    publish(&url, &["--queue", "strict", "--serializer", "yaml", r#"{"x": 1}"#]).await;
    let err = consume(&url, &["--queue", "strict", "--count", "1", "--timeout", "10", "--accept", "json"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("content disallowed"), "{err}");
    let lines = consume(&url, &["--queue", "strict", "--count", "1", "--timeout", "10", "--accept", "json,yaml"])
        .await
        .unwrap();
    assert_eq!(lines[0]["body"], json!({"x": 1}));
    assert_eq!(lines[0]["delivery_info"]["redelivered"], true);
}

#[tokio::test]
async fn without_count_the_timeout_ends_consumption_normally() {
    let url = url();
    publish(&url, &["--queue", "drain", "--count", "2", "1"]).await;
    let lines = consume(&url, &["--queue", "drain", "--timeout", "0.3"]).await.unwrap();
    assert_eq!(lines.len(), 2);
}

fn kelp(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kelp"))
        .args(args)
        .env_remove("KELP_URL")
        .output()
        .expect("the kelp binary runs")
}

#[test]
fn bad_input_exits_non_zero_with_a_clear_message() {
    let out = kelp(&["publish", "--url", "nope://guest:s3cret@host", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "password leaked: {stderr}");

    let out = kelp(&["publish", "--queue", "q", "{not json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));

    let out = kelp(&["publish", "--compression", "rar", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rar"));

    let out = kelp(&["consume", "--queue", "empty", "--count", "1", "--timeout", "0.2"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out") && stderr.contains("0 of 1"), "{stderr}");
}

#[test]
fn publish_exits_zero_once_confirmed() {
    let out = kelp(&["publish", "--queue", "q", "--count", "5", r#"{"ok": true}"#]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn kelp_url_is_the_default_url() {
    let out = Command::new(env!("CARGO_BIN_EXE_kelp"))
        .args(["publish", "1"])
        .env("KELP_URL", "bogus://x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[test]
fn bench_json_reports_kelp_beside_the_mpsc_anchor() {
    let out = kelp(&["bench", "--messages", "5000", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["messages"], 5000);
    assert_eq!(report["size"], 100);
    assert_eq!(report["confirms"], true);
    let names: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kelp", "tokio-mpsc"]);
    for r in report["results"].as_array().unwrap() {
        assert_eq!(r["messages"], 5000);
        assert!(r["messages_per_sec"].as_f64().unwrap() > 0.0);
        assert!(r["latency_us"]["p99"].as_f64().unwrap() >= r["latency_us"]["p50"].as_f64().unwrap());
    }
    assert!(report["ratios"]["kelp/tokio-mpsc"].as_f64().unwrap() > 0.0);
}

/// The binary users install has no broker spawner: without the "bench"
/// feature `--failover` is still an option, but fails saying how to get it.
#[cfg(not(feature = "bench"))]
#[test]
fn bench_failover_without_the_bench_feature_says_how_to_build_it() {
    let out = kelp(&["bench", "--failover"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("kelp: bench --failover needs"), "{stderr}");
    assert!(stderr.contains(r#"the "bench" feature"#), "{stderr}");
    assert!(stderr.contains("--features bench"), "{stderr}");

    let help = kelp(&["bench", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--failover"));
}

/// `kelp drill` on the embedded broker: every message accounted for, the
/// report as one JSON object, exit 0.
#[test]
fn drill_accounts_for_every_message_and_exits_zero() {
    let url = url();
    let out = kelp(&["drill", "--url", &url, "--duration", "2", "--rate", "400", "--json"]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let checker = &report["checker"];
    assert_eq!(checker["passed"], true, "{report}");
    assert_eq!(checker["lost"], 0);
    assert_eq!(checker["unexpected"], 0);
    let sent = checker["sent"].as_u64().expect("a count");
    assert!(sent > 0, "{report}");
    assert_eq!(checker["confirmed"].as_u64(), Some(sent), "memory:// confirms every publish");
    assert_eq!(checker["read"].as_u64(), Some(sent), "every message read");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sent "), "live progress on stderr");
}
