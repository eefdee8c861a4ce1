//! The hello world from synchronous code, with `kelp::blocking`.

use kelp::Queue;
use kelp::blocking::Connection;

fn main() -> kelp::Result<()> {
    let url = std::env::var("KELP_URL").unwrap_or_else(|_| "memory://".to_owned());
    let conn = Connection::new(&url)?;
    let channel = conn.default_channel()?;
    let queue = Queue::new("blocking-hello");
    channel.declare_queue(&queue)?;

    let producer = conn.producer().routing_key("blocking-hello").build()?;
    producer.publish(&serde_json::json!({"hello": "world"})).send()?;

    let mut consumer = conn.consumer([queue]).build()?;
    let message = consumer.next_timeout(std::time::Duration::from_secs(5))?;
    if let Some(message) = message {
        println!("received {}", message.payload()?);
        message.ack()?;
    }
    conn.close()
}
