//! The conformance suite on the embedded `memory://` transport.

mod conformance;

// The embedded broker keeps time with tokio's clock, so the suite runs on a
// paused one: TTLs and expiries pass without sleeping.
conformance_suite!("memory://".to_owned(), paused_clock);

use std::time::Duration;

use kelp::{Connection, Queue};

/// On the paused clock the deadlines are exact: a message is there until
/// its TTL has passed and gone right after, whoever asks.
#[tokio::test(start_paused = true)]
async fn message_ttls_end_exactly_on_the_clock() {
    let conn = Connection::new("memory://localhost/ttl-clock").unwrap();
    let channel = conn.default_channel().await.unwrap();
    let per_queue = Queue::new("ttl-clock-queue").message_ttl(Duration::from_secs(10));
    let per_message = Queue::new("ttl-clock-message");
    per_queue.declare(&channel).await.unwrap();
    per_message.declare(&channel).await.unwrap();
    let producer = conn.producer().build().await.unwrap();
    producer.publish("q").routing_key("ttl-clock-queue").send().await.unwrap();
    producer.publish("m").routing_key("ttl-clock-message").expiration(Duration::from_secs(5)).send().await.unwrap();

    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert_eq!(per_message.inspect(&channel).await.unwrap().message_count, 1, "alive 1 ms before its TTL");
    tokio::time::advance(Duration::from_millis(2)).await;
    assert!(per_message.get(&channel, true).await.unwrap().is_none(), "expired 1 ms after its TTL");

    tokio::time::advance(Duration::from_millis(4_998)).await; // 9.999 s since the publish
    assert_eq!(per_queue.inspect(&channel).await.unwrap().message_count, 1);
    tokio::time::advance(Duration::from_millis(2)).await;
    assert!(per_queue.get(&channel, true).await.unwrap().is_none());
}

/// `x-expires`: a queue nobody uses is deleted once that long has passed
/// since its last use; using it starts the count again.
#[tokio::test(start_paused = true)]
async fn an_unused_queue_expires_and_a_used_one_does_not() {
    let conn = Connection::new("memory://localhost/expires-clock").unwrap();
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new("expires-clock").expires(Duration::from_secs(30));
    queue.declare(&channel).await.unwrap();

    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(queue.get(&channel, true).await.unwrap().is_none()); // a use
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(queue.inspect(&channel).await.is_ok(), "used 20 s ago: not expired");
    tokio::time::sleep(Duration::from_secs(31)).await;
    let err = queue.inspect(&channel).await.unwrap_err();
    assert!(err.is_not_found(), "unused for 31 s of its 30: deleted ({err})");
}
