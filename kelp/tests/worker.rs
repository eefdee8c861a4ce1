//! The worker loop on memory:// (its failover behaviour is in failover.rs).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kelp::{Connection, Queue, Worker};
use kelp_test_support::eventually;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_settles_what_handlers_leave_and_stops_gracefully() {
    let conn = Connection::new("memory://localhost/worker-test").unwrap();
    let seen = Arc::new(Mutex::new(Vec::<(i32, bool)>::new()));
    let log = seen.clone();
    let worker = Worker::builder(&conn)
        .consumer([Queue::new("work")], 5, move |message| {
            let log = log.clone();
            async move {
                let n: i32 = message.decode()?;
                log.lock().unwrap().push((n, message.redelivered()));
                if n == 3 && !message.redelivered() {
                    // Fails the first time: the worker requeues it.
                    return Err(kelp::Error::from_handler("flaky handler"));
                }
                // Returning Ok without settling: the worker acks.
                Ok(())
            }
        })
        .min_restart_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let stop = worker.stop_handle();
    let running = tokio::spawn(worker.run());

    let producer_conn = Connection::new("memory://localhost/worker-test").unwrap();
    let channel = producer_conn.default_channel().await.unwrap();
    Queue::new("work").declare(&channel).await.unwrap();
    let producer = producer_conn.producer().routing_key("work").build().await.unwrap();
    for n in 0..10 {
        producer.publish(&n).send().await.unwrap();
    }
    eventually("the handlers saw 11 deliveries", PATIENCE, async || seen.lock().unwrap().len() == 11).await;
    let handled = seen.lock().unwrap().clone();
    let firsts: BTreeSet<i32> = handled.iter().filter(|(_, r)| !r).map(|(n, _)| *n).collect();
    assert_eq!(firsts, (0..10).collect());
    assert!(handled.contains(&(3, true)), "the failed message came back redelivered");

    stop.stop();
    tokio::time::timeout(PATIENCE, running).await.unwrap().unwrap().unwrap();
    // Everything was acked: the queue is empty.
    let declared = Queue::new("work").inspect(&channel).await.unwrap();
    assert_eq!(declared.message_count, 0);
}
