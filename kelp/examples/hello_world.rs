//! Publish a message and consume it: the kelp hello world.
//!
//! Runs on the embedded broker by default; point it at RabbitMQ with
//! `KELP_URL=amqp://guest:guest@localhost:5672// cargo run --example hello_world`.

use kelp::{Connection, Exchange, Queue};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Greeting {
    to: String,
    text: String,
}

#[tokio::main]
async fn main() -> kelp::Result<()> {
    let url = std::env::var("KELP_URL").unwrap_or_else(|_| "memory://".to_owned());
    let conn = Connection::new(&url)?;

    // A direct exchange and a queue bound to it with the routing key "hello".
    let exchange = Exchange::direct("greetings");
    let queue = Queue::new("hello").exchange(exchange.clone()).routing_key("hello");

    // Consumers declare their queues (and exchanges and bindings) by default.
    let mut consumer = conn.consumer([queue]).prefetch_count(10).build().await?;

    // Producers wait for the broker's confirm and send persistent messages by default.
    let producer = conn.producer().exchange(exchange).routing_key("hello").build().await?;
    producer
        .publish(&Greeting { to: "world".into(), text: "hello".into() })
        .send()
        .await?;
    println!("published to {conn}");

    if let Some(message) = consumer.next().await {
        let message = message?;
        let greeting: Greeting = message.decode()?;
        println!("received {greeting:?} ({})", message.content_type().unwrap_or("?"));
        message.ack().await?;
    }
    consumer.cancel().await?;
    conn.close().await
}
