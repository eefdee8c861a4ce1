//! What a producer pool costs per message: publishing through
//! `ProducerPool::acquire` (take, publish with confirms, give back) against
//! publishing on a producer held for the whole run, in one run, on each
//! broker. Target (issue 6): at most 10% more per message.
//!
//! `cargo bench -p kelp --bench pool_overhead`; `KELP_BENCH_URLS` (default
//! `memory://;amqp://guest:guest@127.0.0.1:5672/%2f;redis://127.0.0.1:6379/0`,
//! separated by `|`), `KELP_BENCH_MESSAGES` (default 20000 on memory, 5000
//! elsewhere), `KELP_BENCH_ROUNDS` (5, interleaved; the median is shown).
//! A broker that cannot be reached fails the bench.

use std::time::{Duration, Instant};

use kelp::{Connection, ProducerPool, Queue};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn held(conn: &Connection, queue: &str, n: usize) -> kelp::Result<Duration> {
    let producer = conn.producer().routing_key(queue).build().await?;
    let start = Instant::now();
    for i in 0..n {
        producer.publish(&i).send().await?;
    }
    Ok(start.elapsed())
}

async fn pooled(pool: &ProducerPool, n: usize) -> kelp::Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        pool.acquire().await?.publish(&i).send().await?;
    }
    Ok(start.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> kelp::Result<()> {
    let urls = std::env::var("KELP_BENCH_URLS").unwrap_or_else(|_| {
        "memory://|amqp://guest:guest@127.0.0.1:5672/%2f|redis://127.0.0.1:6379/0".to_owned()
    });
    let rounds: usize = env_or("KELP_BENCH_ROUNDS", 5);
    println!("{:<40} {:>10} {:>14} {:>14} {:>10}", "broker", "messages", "held µs/msg", "pooled µs/msg", "overhead");
    for url in urls.split('|') {
        let n: usize = env_or("KELP_BENCH_MESSAGES", if url.starts_with("memory") { 20_000 } else { 5_000 });
        let conn = Connection::new(url)?;
        conn.connect().await.map_err(|e| {
            eprintln!("pool_overhead: cannot reach {url}: {e}");
            e
        })?;
        let channel = conn.default_channel().await?;
        // Not durable: on RabbitMQ a durable queue makes every confirm wait for a
        // disk sync, which would hide the client-side cost being measured.
        let queue = Queue::new(format!("kelp-bench-pool-{}", std::process::id())).durable(false);
        queue.declare(&channel).await?;
        let pool = ProducerPool::new(conn.producer().routing_key(queue.name.clone()), 10);
        // Warm up both paths (connections, channels, the pool's producer).
        held(&conn, &queue.name, n / 10).await?;
        pooled(&pool, n / 10).await?;
        let (mut h, mut p) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            h.push(held(&conn, &queue.name, n).await?.as_secs_f64() * 1e6 / n as f64);
            p.push(pooled(&pool, n).await?.as_secs_f64() * 1e6 / n as f64);
            queue.purge(&channel).await?;
        }
        let (h, p) = (median(h), median(p));
        println!("{:<40} {:>10} {:>14.2} {:>14.2} {:>9.1}%", conn.as_uri(false), n, h, p, (p / h - 1.0) * 100.0);
        queue.delete(&channel, false, false).await?;
        conn.close().await?;
    }
    Ok(())
}
