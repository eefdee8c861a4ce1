//! A producer that publishes through a pool with failover across two
//! brokers, as in Kombu's failover guide: every publish takes a pooled
//! connection, publishes with confirms, and hands it back; when the broker
//! it is on dies, the connection moves to the other one and the publish is
//! retried under the retry policy.
//!
//! ```sh
//! KELP_URLS="amqp://guest:guest@localhost:5672//;amqp://guest:guest@localhost:5673//" \
//!     cargo run --example pooled_failover_producer
//! ```
//! Without `KELP_URLS` it runs on the embedded broker.

use std::time::Duration;

use kelp::{Connection, ConnectionPool, Exchange, FailoverStrategy, Queue, RetryPolicy};

#[tokio::main]
async fn main() -> kelp::Result<()> {
    let urls = std::env::var("KELP_URLS").unwrap_or_else(|_| "memory://".to_owned());
    let retry = RetryPolicy::default()
        .interval_start(Duration::from_millis(100))
        .interval_step(Duration::from_millis(200))
        .interval_max(Duration::from_secs(1))
        .max_retries(10);
    let connections = ConnectionPool::new(
        Connection::builder(urls).failover_strategy(FailoverStrategy::RoundRobin).retry_policy(retry.clone()),
        4,
    );

    let exchange = Exchange::direct("kelp-example-orders");
    let queue = Queue::new("kelp-example-orders").exchange(exchange.clone()).routing_key("order");
    for id in 0..20u32 {
        let conn = connections.acquire().await?;
        let producer = conn.producer().exchange(exchange.clone()).routing_key("order").retry_policy(retry.clone()).build().await?;
        // `declare` makes sure the queue exists on whichever broker takes it.
        producer.publish(&serde_json::json!({"order": id})).declare(queue.clone()).send().await?;
        println!("order {id} confirmed by {}", conn.current_url());
    }
    Ok(())
}
