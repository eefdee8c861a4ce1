//! The simple interface from synchronous code: `kelp::blocking` has the
//! same names as the async API and runs its own runtime thread.
//!
//! `cargo run --example blocking_simple_queue`, or with `KELP_URL=...`.

use std::time::Duration;

use kelp::blocking::{Connection, ConnectionPool, SimpleQueue};

fn main() -> kelp::Result<()> {
    let url = std::env::var("KELP_URL").unwrap_or_else(|_| "memory://".to_owned());
    let pool = ConnectionPool::new(kelp::Connection::builder(&url), 2);
    let conn = pool.acquire()?;
    let queue = SimpleQueue::new(&conn, "kelp-example-blocking")?;
    for i in 0..3 {
        queue.put(&i)?;
    }
    while let Ok(message) = queue.get_timeout(Duration::from_millis(200)) {
        println!("got {}", message.decode::<i32>()?);
        message.ack()?;
    }
    queue.close()?;
    let _: &Connection = &conn;
    Ok(())
}
