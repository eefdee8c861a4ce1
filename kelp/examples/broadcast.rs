//! Broadcast: every consumer gets its own queue on a fanout exchange and
//! receives every message.
//!
//! `cargo run --example broadcast`, or with `KELP_URL=...`.

use std::time::Duration;

use kelp::{Broadcast, Connection};

#[tokio::main]
async fn main() -> kelp::Result<()> {
    let url = std::env::var("KELP_URL").unwrap_or_else(|_| "memory://".to_owned());
    let conn = Connection::new(&url)?;
    let news = Broadcast::new("kelp-example-news");

    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(conn.consumer([news.queue()]).build().await?);
    }
    conn.producer().exchange(news.exchange()).build().await?.publish("kelp 0.1 is out").send().await?;

    for (i, listener) in listeners.iter_mut().enumerate() {
        if let Some(message) = listener.next_timeout(Duration::from_secs(5)).await? {
            println!("listener {i} on {:?}: {}", listener.queues(), message.decode::<String>()?);
            message.ack().await?;
        }
    }
    conn.close().await
}
