//! `kelp bench`: one producer and one consumer in one process, measured
//! side by side with reference peers in the same run, so results are ratios
//! rather than absolute numbers that depend on the machine.
//!
//! On `memory://` the reference is the same workload through a bare
//! `tokio::sync::mpsc` channel: the cost of moving a message between two
//! tasks, with nothing else. On `redis://` it is a bare LPUSH / BRPOP loop
//! on the `redis` crate ([`crate::bare_redis`], row `bare-redis`).

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use clap::Args;
use serde_json::json;

use kelp::{Connection, Queue};

use crate::CliError;
use crate::commands::UrlArg;
use crate::measure::{BenchResult, SAMPLE_EVERY, WINDOW, process_cpu_time, progress, spawn_ticker};

/// Options of `kelp bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub url: UrlArg,
    /// Messages to send (default: 1,000,000 on memory://, 100,000 elsewhere).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Body size in bytes (at least 8: the send time travels in the body).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Publish without waiting for publisher confirms.
    #[arg(long)]
    pub no_confirm: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Instead of throughput: kill -9 and freeze (SIGSTOP) a RabbitMQ node
    /// under kelp (as is, and with a warm standby connection) and under
    /// Python Kombu, and report detection and resume
    /// times, losses and duplicates. Starts two throwaway local nodes (needs
    /// `rabbitmq-server` installed); Kombu comes from `KELP_BENCH_PYTHON`.
    #[arg(long)]
    pub failover: bool,
}

/// A body of `size` bytes starting with the send time in nanoseconds since
/// `epoch` (plus one, so that 0 means "not sampled") for sampled messages.
fn stamped_body(size: usize, epoch: Instant, index: u64) -> Bytes {
    let mut body = BytesMut::with_capacity(size);
    let stamp = if index.is_multiple_of(SAMPLE_EVERY) {
        epoch.elapsed().as_nanos() as u64 + 1
    } else {
        0
    };
    body.put_u64(stamp);
    body.resize(size, b'k');
    body.freeze()
}

/// Record the latency of a sampled message.
fn record_latency(latencies: &mut Vec<u64>, body: &[u8], epoch: Instant) {
    let sent = body
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    if sent != 0 {
        latencies.push((epoch.elapsed().as_nanos() as u64 + 1).saturating_sub(sent));
    }
}

/// Run kelp's producer and consumer against `url`.
pub async fn run_kelp(url: &str, messages: u64, size: usize, confirms: bool, visible: bool) -> Result<BenchResult, CliError> {
    let conn = Connection::new(url)?;
    let name = format!("kelp-bench-{}", std::process::id());
    let queue = Queue::new(name.clone()).durable(true).auto_delete(false);
    let setup = conn.channel().await?;
    queue.declare(&setup).await?;
    queue.purge(&setup).await?;

    let consumer_conn = Connection::new(url)?;
    let mut consumer = consumer_conn
        .consumer([queue.clone()])
        .auto_declare(false)
        .prefetch_count(u16::try_from(WINDOW).unwrap_or(u16::MAX))
        .build()
        .await?;
    let producer = conn
        .channel()
        .await?
        .producer()
        .routing_key(name.clone())
        .confirms(confirms)
        .build()
        .await?;

    let counter = Arc::new(AtomicU64::new(0));
    let consumed_notify = Arc::new(tokio::sync::Notify::new());
    let ticker = spawn_ticker(progress(messages, "kelp", visible), counter.clone());
    let epoch = Instant::now();
    let cpu_before = process_cpu_time();

    let consuming = {
        let counter = counter.clone();
        let consumed_notify = consumed_notify.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(usize::try_from(messages / SAMPLE_EVERY + 1).unwrap_or(0));
            let mut received = 0u64;
            while received < messages {
                let message = match consumer.next().await {
                    Some(m) => m?,
                    None => return Err(CliError::failure("the benchmark consumer ended early")),
                };
                record_latency(&mut latencies, message.raw_body(), epoch);
                message.ack().await?;
                received += 1;
                if received.is_multiple_of(64) {
                    counter.store(received, Ordering::Release);
                    consumed_notify.notify_one();
                }
            }
            counter.store(received, Ordering::Relaxed);
            consumer.cancel().await?;
            Ok::<_, CliError>((latencies, epoch.elapsed()))
        })
    };

    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for sent in 0..messages {
        // Keep at most WINDOW messages published but not yet consumed, as
        // the bounded mpsc anchor does: latency is then measured in a steady
        // state rather than behind an ever-growing backlog.
        // Once full, wait until half of it drained: waking the publisher for
        // every few consumed messages would measure thread wake-ups.
        if sent.saturating_sub(counter.load(Ordering::Acquire)) >= WINDOW as u64 {
            while sent.saturating_sub(counter.load(Ordering::Acquire)) > (WINDOW / 2) as u64 {
                let notified = consumed_notify.notified();
                if sent.saturating_sub(counter.load(Ordering::Acquire)) <= (WINDOW / 2) as u64 {
                    break;
                }
                notified.await;
            }
        }
        let confirmation = producer.publish_bytes(stamped_body(size, epoch, sent)).enqueue().await?;
        in_flight.push_back(confirmation);
        if in_flight.len() >= WINDOW
            && let Some(c) = in_flight.pop_front() {
                c.await?;
            }
    }
    for c in in_flight {
        c.await?;
    }
    let (mut latencies, elapsed) = consuming
        .await
        .map_err(|e| CliError::failure(format!("benchmark consumer task failed: {e}")))??;
    let cpu = cpu_before.zip(process_cpu_time()).map(|(a, b)| b.saturating_sub(a));
    ticker.abort();
    latencies.sort_unstable();
    queue.delete(&setup, false, false).await?;
    conn.close().await?;
    consumer_conn.close().await?;
    Ok(BenchResult {
        name: "kelp".to_owned(),
        messages,
        size,
        elapsed,
        latencies_ns: latencies,
        cpu,
    })
}

/// The anchor: the same workload through a bare bounded `tokio::sync::mpsc`
/// channel, with the consumer "acking" through a second channel (as a
/// consumer acks to its broker).
pub async fn run_mpsc(messages: u64, size: usize, visible: bool) -> Result<BenchResult, CliError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WINDOW);
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let counter = Arc::new(AtomicU64::new(0));
    let ticker = spawn_ticker(progress(messages, "tokio-mpsc", visible), counter.clone());
    let epoch = Instant::now();
    let cpu_before = process_cpu_time();
    let consuming = {
        let counter = counter.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(usize::try_from(messages / SAMPLE_EVERY + 1).unwrap_or(0));
            let mut received = 0u64;
            while let Some(body) = rx.recv().await {
                record_latency(&mut latencies, &body, epoch);
                received += 1;
                let _ = ack_tx.send(received);
                if received.is_multiple_of(1024) {
                    counter.store(received, Ordering::Relaxed);
                }
            }
            counter.store(received, Ordering::Relaxed);
            (latencies, epoch.elapsed())
        })
    };
    let acks = tokio::spawn(async move { while ack_rx.recv().await.is_some() {} });
    for sent in 0..messages {
        if tx.send(stamped_body(size, epoch, sent)).await.is_err() {
            return Err(CliError::failure("the mpsc consumer ended early"));
        }
    }
    drop(tx);
    let (mut latencies, elapsed) = consuming
        .await
        .map_err(|e| CliError::failure(format!("mpsc consumer task failed: {e}")))?;
    let _ = acks.await;
    let cpu = cpu_before.zip(process_cpu_time()).map(|(a, b)| b.saturating_sub(a));
    ticker.abort();
    latencies.sort_unstable();
    Ok(BenchResult {
        name: "tokio-mpsc".to_owned(),
        messages,
        size,
        elapsed,
        latencies_ns: latencies,
        cpu,
    })
}

/// `kelp bench`.
pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    if args.failover {
        // The failover run starts RabbitMQ nodes of its own: only in builds
        // with the "bench" feature (the binary users install has none).
        #[cfg(feature = "bench")]
        return crate::failover::run(args.json).await;
        #[cfg(not(feature = "bench"))]
        return Err(CliError::failure(
            "bench --failover needs kelp built with the \"bench\" feature \
             (cargo run --release -p kelp-cli --features bench -- bench --failover)",
        ));
    }
    if args.size < 8 {
        return Err(CliError::usage("--size must be at least 8 bytes (the send time travels in the body)"));
    }
    let url = args.url.url.clone();
    let memory = kelp::BrokerUrl::parse_list(&url)?
        .first()
        .is_some_and(|u| u.transport() == kelp::TransportKind::Memory);
    let redis = kelp::BrokerUrl::parse_list(&url)?
        .first()
        .is_some_and(|u| u.transport() == kelp::TransportKind::Redis);
    let messages = args.messages.unwrap_or(if memory { 1_000_000 } else { 100_000 });
    if messages == 0 {
        return Err(CliError::usage("--messages must be at least 1"));
    }
    let visible = !args.json && std::io::stderr().is_terminal();
    let confirms = !args.no_confirm;

    let mut results = vec![run_kelp(&url, messages, args.size, confirms, visible).await?];
    if memory {
        results.push(run_mpsc(messages, args.size, visible).await?);
    }
    // The first URL of a list (the bare loop has no failover), when the
    // redis crate reads it as it is (not redis+socket://).
    let first = url.split(';').next().unwrap_or(&url).trim();
    if redis && (first.starts_with("redis://") || first.starts_with("rediss://")) {
        results.push(crate::bare_redis::run(first, messages, args.size, visible).await?);
    }
    let shown_url = kelp::BrokerUrl::parse_list(&url)?
        .iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(";");
    let ratios: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .skip(1)
        .map(|peer| (format!("kelp/{}", peer.name), json!(results[0].rate() / peer.rate().max(1e-9))))
        .collect();
    if args.json {
        let report = json!({
            "url": shown_url,
            "messages": messages,
            "size": args.size,
            "confirms": confirms,
            "acks": true,
            "results": results.iter().map(BenchResult::to_json).collect::<Vec<_>>(),
            "ratios": ratios,
        });
        println!("{report}");
        return Ok(());
    }
    println!(
        "kelp bench: {shown_url}: {messages} messages of {} bytes, confirms {}, acks on",
        args.size,
        if confirms { "on" } else { "off" }
    );
    println!(
        "{:<12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11}",
        "name", "msg/s", "MB/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "CPU µs/msg"
    );
    for r in &results {
        println!(
            "{:<12} {:>12.0} {:>9.2} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>11}",
            r.name,
            r.rate(),
            r.mb_per_sec(),
            r.latency_us(0.50),
            r.latency_us(0.99),
            r.latency_us(0.999),
            r.latency_us(1.0),
            r.cpu_us_per_message()
                .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.2}"))
        );
    }
    for (name, ratio) in &ratios {
        println!("throughput ratio {name}: {:.3}", ratio.as_f64().unwrap_or(0.0));
    }
    Ok(())
}
