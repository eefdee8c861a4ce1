//! Request / reply: a server answers with `send_reply`, a client waits for
//! the reply to its own request (RabbitMQ's direct reply-to on amqp://).
//!
//! `cargo run --example rpc`, or with `KELP_URL=...` for RabbitMQ or Redis.

use std::time::Duration;

use kelp::{Connection, Queue, RpcClient};

#[tokio::main]
async fn main() -> kelp::Result<()> {
    let url = std::env::var("KELP_URL").unwrap_or_else(|_| "memory://".to_owned());
    let conn = Connection::new(&url)?;

    // The server: square what it is sent.
    let requests = Queue::new("kelp-example-rpc").durable(false).auto_delete(true);
    let mut server = conn.consumer([requests.clone()]).build().await?;
    let replies = conn.producer().build().await?;
    tokio::spawn(async move {
        while let Some(Ok(request)) = server.next().await {
            let n: i64 = request.decode().unwrap_or(0);
            if let Err(e) = kelp::send_reply(&replies, &request, &(n * n)).await {
                eprintln!("reply failed: {e}");
            }
            let _ = request.ack().await;
        }
    });

    let client = RpcClient::new(&conn).await?;
    for n in 1..=3i64 {
        let reply = client.call("", &requests.name, &n, Duration::from_secs(5)).await?;
        println!("{n}² = {}", reply.decode::<i64>()?);
    }
    conn.close().await
}
