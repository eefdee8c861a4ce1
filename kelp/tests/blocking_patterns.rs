//! The pools, the simple interface and the common patterns from synchronous
//! code (`kelp::blocking`), on `memory://`, the real RabbitMQ and the real
//! Redis: the same names as the async API, no runtime of the caller's.

mod every_transport;

use std::time::Duration;

use kelp::Queue;
use kelp::blocking::{Broadcast, Connection, ConnectionPool, ProducerPool, RpcClient, SimpleBuffer, SimpleQueue};
use kelp_test_support::{eventually_blocking, unique_name};

const PATIENCE: Duration = Duration::from_secs(20);

on_every_transport_blocking!(simple_queue_and_buffer, pools_limit_and_replace, rpc_and_broadcast);

fn simple_queue_and_buffer(url: &str) {
    let conn = Connection::new(url).unwrap();
    let queue = SimpleQueue::new(&conn, &unique_name("bsimple")).unwrap();
    assert!(queue.get_nowait().unwrap_err().is_empty());
    queue.put(&1).unwrap();
    queue.put(&2).unwrap();
    assert_eq!(queue.qsize().unwrap(), 2);
    let one = queue.get().unwrap();
    assert_eq!(one.decode::<i32>().unwrap(), 1);
    one.ack().unwrap();
    assert_eq!(queue.clear().unwrap(), 1);
    assert!(queue.get_timeout(Duration::from_millis(50)).unwrap_err().is_empty());
    queue.close().unwrap();

    let buffer = SimpleBuffer::new(&conn, &unique_name("bbuffer")).unwrap();
    buffer.put(&"x").unwrap();
    assert_eq!(buffer.get_timeout(PATIENCE).unwrap().decode::<String>().unwrap(), "x");
    buffer.close().unwrap();
}

fn pools_limit_and_replace(url: &str) {
    let pool = ConnectionPool::new(kelp::Connection::builder(url), 2);
    let a = pool.acquire().unwrap();
    let b = pool.acquire_nowait().unwrap();
    assert!(pool.acquire_nowait().unwrap_err().is_limit_exceeded());
    assert!(pool.acquire_timeout(Duration::from_millis(50)).unwrap_err().is_timeout());
    a.connect().unwrap();
    drop(a);
    b.discard();
    assert_eq!((pool.in_use(), pool.idle()), (0, 1), "the discarded one is not kept");
    pool.set_limit(1);
    let c = pool.acquire().unwrap();
    assert!(c.is_connected(), "the kept connection is handed out again");
    drop(c);
    pool.reset();
    assert_eq!(pool.idle(), 0);

    let conn = Connection::new(url).unwrap();
    let queue = Queue::new(unique_name("bpool")).durable(false);
    let channel = conn.default_channel().unwrap();
    channel.declare_queue(&queue).unwrap();
    let producers = ProducerPool::new(conn.producer().routing_key(queue.name.clone()), 2);
    producers.acquire().unwrap().publish(&"pooled").send().unwrap();
    assert_eq!(producers.idle(), 1);
    let got = eventually_blocking("the pooled producer's message in the queue", PATIENCE, || channel.get(&queue, false).unwrap());
    assert_eq!(got.decode::<String>().unwrap(), "pooled");
    got.ack().unwrap();
    channel.delete_queue(&queue, false, false).unwrap();
}

fn rpc_and_broadcast(url: &str) {
    let conn = Connection::new(url).unwrap();
    let requests = Queue::new(unique_name("brpc")).durable(false).auto_delete(true);
    let mut server = conn.consumer([requests.clone()]).build().unwrap();
    let replier = conn.producer().build().unwrap();
    std::thread::spawn(move || {
        for request in server.by_ref().flatten() {
            let n: i64 = request.decode().unwrap();
            kelp::blocking::send_reply(&replier, &request, &(n * 3)).unwrap();
            request.ack().unwrap();
        }
    });
    let client = RpcClient::new(&conn).unwrap();
    assert_eq!(client.call("", &requests.name, &7, PATIENCE).unwrap().decode::<i64>().unwrap(), 21);

    let news = Broadcast::new(unique_name("bnews"));
    let mut a = conn.consumer([news.queue()]).build().unwrap();
    let mut b = conn.consumer([news.queue()]).build().unwrap();
    conn.producer().exchange(news.exchange()).build().unwrap().publish(&"all").send().unwrap();
    for consumer in [&mut a, &mut b] {
        let message = consumer.next_timeout(PATIENCE).unwrap().expect("each consumer gets it");
        assert_eq!(message.decode::<String>().unwrap(), "all");
        message.ack().unwrap();
    }
}
