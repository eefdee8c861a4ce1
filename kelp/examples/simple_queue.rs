//! Kombu's simple interface: put and get on a named queue, with a timeout.
//!
//! `cargo run --example simple_queue` (embedded broker), or with
//! `KELP_URL=redis://localhost:6379/0` or `KELP_URL=amqp://guest:guest@localhost:5672//`.

use std::time::Duration;

use kelp::{Connection, SimpleQueue};

#[tokio::main]
async fn main() -> kelp::Result<()> {
    let url = std::env::var("KELP_URL").unwrap_or_else(|_| "memory://".to_owned());
    let conn = Connection::new(&url)?;
    let queue = SimpleQueue::new(&conn, "kelp-example-simple").await?;

    queue.put(&serde_json::json!({"hello": "world"})).await?;
    println!("{} message(s) waiting", queue.qsize().await?);

    let message = queue.get_timeout(Duration::from_secs(5)).await?;
    println!("received {}", message.decode::<serde_json::Value>()?);
    message.ack().await?;

    // Nothing more: get_timeout says so with an Empty error.
    match queue.get_timeout(Duration::from_millis(200)).await {
        Err(e) if e.is_empty() => println!("the queue is empty"),
        other => println!("unexpected: {other:?}"),
    }
    queue.close().await?;
    conn.close().await
}
