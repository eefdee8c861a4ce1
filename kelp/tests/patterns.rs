//! The simple interface and the common patterns on `memory://`, the real
//! RabbitMQ and the real Redis: SimpleQueue / SimpleBuffer, request / reply
//! (direct reply-to on RabbitMQ), broadcast, draining a consumer.

mod every_transport;

use std::time::Duration;

use kelp::{Broadcast, Connection, Queue, RpcClient, SimpleBuffer, SimpleQueue};
use kelp_test_support::{eventually, unique_name};

const PATIENCE: Duration = Duration::from_secs(20);

on_every_transport!(
    simple_queue_put_get_qsize_clear,
    simple_buffer_needs_no_acks,
    rpc_round_trip,
    rpc_reply_queue_follows_the_capability,
    broadcast_reaches_every_consumer,
    drain_takes_what_arrives,
    collect_replies_takes_only_its_own,
);

async fn simple_queue_put_get_qsize_clear(url: &str) {
    let conn = Connection::new(url).unwrap();
    let name = unique_name("simple");
    let queue = SimpleQueue::new(&conn, &name).await.unwrap();
    assert!(queue.get_nowait().await.unwrap_err().is_empty());
    assert!(queue.get_timeout(Duration::from_millis(50)).await.unwrap_err().is_empty());
    for i in 0..3 {
        queue.put(&i).await.unwrap();
    }
    assert_eq!(queue.qsize().await.unwrap(), 3);
    let first = queue.get().await.unwrap();
    assert_eq!(first.decode::<i32>().unwrap(), 0);
    first.ack().await.unwrap();
    let second = queue.get_nowait().await.unwrap();
    assert_eq!(second.decode::<i32>().unwrap(), 1);
    second.ack().await.unwrap();
    assert_eq!(queue.clear().await.unwrap(), 1);
    assert_eq!(queue.qsize().await.unwrap(), 0);
    // A message not acked goes back when the queue is closed.
    queue.put(&"kept").await.unwrap();
    let unacked = queue.get_timeout(PATIENCE).await.unwrap();
    assert_eq!(unacked.decode::<String>().unwrap(), "kept");
    queue.close().await.unwrap();
    let again = SimpleQueue::new(&conn, &name).await.unwrap();
    let back = again.get_timeout(PATIENCE).await.unwrap();
    assert_eq!(back.decode::<String>().unwrap(), "kept");
    assert!(back.redelivered());
    back.ack().await.unwrap();
    again.queue().delete(&conn.default_channel().await.unwrap(), false, false).await.unwrap();
}

async fn simple_buffer_needs_no_acks(url: &str) {
    let conn = Connection::new(url).unwrap();
    let name = unique_name("buffer");
    let buffer = SimpleBuffer::new(&conn, &name).await.unwrap();
    buffer.put(&"a").await.unwrap();
    buffer.put(&"b").await.unwrap();
    assert_eq!(buffer.get_timeout(PATIENCE).await.unwrap().decode::<String>().unwrap(), "a");
    assert_eq!(buffer.get_timeout(PATIENCE).await.unwrap().decode::<String>().unwrap(), "b");
    buffer.close().await.unwrap();
    // Nothing was acked, and nothing comes back: no-ack delivery.
    let again = SimpleBuffer::new(&conn, &name).await.unwrap();
    assert!(again.get_timeout(Duration::from_millis(300)).await.unwrap_err().is_empty());
    again.close().await.unwrap();
}

async fn rpc_round_trip(url: &str) {
    let conn = Connection::new(url).unwrap();
    let requests = Queue::new(unique_name("rpc")).durable(false).auto_delete(true);
    let mut server = conn.consumer([requests.clone()]).build().await.unwrap();
    let replier = conn.producer().build().await.unwrap();
    let serving = tokio::spawn(async move {
        while let Some(Ok(request)) = server.next().await {
            let n: i64 = request.decode().unwrap();
            kelp::send_reply(&replier, &request, &(n * 2)).await.unwrap();
            request.ack().await.unwrap();
        }
    });
    let client = RpcClient::new(&conn).await.unwrap();
    for n in [1i64, 20, 300] {
        let reply = client.call("", &requests.name, &n, PATIENCE).await.unwrap();
        assert_eq!(reply.decode::<i64>().unwrap(), n * 2);
    }
    // The reply keeps the request's serializer.
    #[cfg(feature = "msgpack")]
    {
    let reply = {
        let producer = conn.producer().serializer(kelp::Serializer::msgpack()).build().await.unwrap();
        let reply_queue = Queue::new(unique_name("rpc-reply")).durable(false).auto_delete(true);
        let mut replies = conn.consumer([reply_queue.clone()]).build().await.unwrap();
        producer
            .publish(&5i64)
            .routing_key(requests.name.clone())
            .reply_to(reply_queue.name.clone())
            .correlation_id("msgpack-call")
            .send()
            .await
            .unwrap();
        let reply = tokio::time::timeout(PATIENCE, replies.next()).await.expect("a reply").unwrap().unwrap();
        reply.ack().await.unwrap();
        reply
    };
    assert_eq!(reply.content_type(), Some("application/x-msgpack"));
    assert_eq!(reply.properties().correlation_id.as_deref(), Some("msgpack-call"));
    assert_eq!(reply.decode::<i64>().unwrap(), 10);
    }
    // No server: a timeout, not a hang.
    let nobody = Queue::new(unique_name("rpc-nobody")).durable(false).auto_delete(true);
    nobody.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let err = client.call("", &nobody.name, &1, Duration::from_millis(200)).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    serving.abort();
}

/// Where the transport has direct reply-to (RabbitMQ), the client takes
/// its replies by it: no reply queue of its own. Elsewhere it declares one.
async fn rpc_reply_queue_follows_the_capability(url: &str) {
    let conn = Connection::new(url).unwrap();
    let direct = conn.capabilities().await.unwrap().direct_reply_to;
    let client = RpcClient::new(&conn).await.unwrap();
    if direct {
        assert_eq!(client.reply_to(), kelp::DIRECT_REPLY_TO, "direct reply-to");
    } else {
        assert!(client.reply_to().starts_with("kelp.reply."), "{}", client.reply_to());
        let own = Queue::new(client.reply_to()).passive(true);
        own.declare(client.channel()).await.expect("the client's own reply queue exists");
    }
}

async fn broadcast_reaches_every_consumer(url: &str) {
    let conn = Connection::new(url).unwrap();
    let news = Broadcast::new(unique_name("news"));
    let mut consumers = Vec::new();
    for _ in 0..3 {
        consumers.push(conn.consumer([news.queue()]).build().await.unwrap());
    }
    let producer = conn.producer().exchange(news.exchange()).build().await.unwrap();
    producer.publish("to all").send().await.unwrap();
    for consumer in &mut consumers {
        let message = consumer.next_timeout(PATIENCE).await.unwrap().expect("every consumer gets it");
        assert_eq!(message.decode::<String>().unwrap(), "to all");
        message.ack().await.unwrap();
    }
    let names: std::collections::HashSet<String> = consumers.iter().flat_map(|c| c.queues()).collect();
    assert_eq!(names.len(), 3, "a queue per consumer");
}

async fn drain_takes_what_arrives(url: &str) {
    let conn = Connection::new(url).unwrap();
    let queue = Queue::new(unique_name("drain")).durable(false).auto_delete(true);
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(10).build().await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for i in 0..5 {
        producer.publish(&i).send().await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        let drained = consumer.drain(Duration::from_millis(300), 3).await.unwrap();
        assert!(drained.len() <= 3, "the limit holds");
        assert!(!drained.is_empty(), "messages were waiting");
        for message in drained {
            got.push(message.decode::<i32>().unwrap());
            message.ack().await.unwrap();
        }
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(consumer.drain(Duration::from_millis(100), 3).await.unwrap().is_empty());
}

async fn collect_replies_takes_only_its_own(url: &str) {
    let conn = Connection::new(url).unwrap();
    let queue = Queue::new(unique_name("collect")).durable(false);
    let channel = conn.default_channel().await.unwrap();
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for (i, id) in ["mine", "other", "mine"].iter().enumerate() {
        producer.publish(&i).correlation_id(*id).send().await.unwrap();
    }
    let mine = kelp::collect_replies(&conn, queue.clone(), "mine", 10, Duration::from_millis(300)).await.unwrap();
    assert_eq!(mine.iter().map(|m| m.decode::<usize>().unwrap()).collect::<Vec<_>>(), [0, 2]);
    let left = eventually("the other reply was left", PATIENCE, async || queue.get(&channel, false).await.unwrap()).await;
    assert_eq!(left.properties().correlation_id.as_deref(), Some("other"));
    left.ack().await.unwrap();
    queue.delete(&channel, false, false).await.unwrap();
}
