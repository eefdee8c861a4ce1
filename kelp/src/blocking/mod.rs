//! A synchronous facade over kelp's async API, for code without an async
//! runtime (in the manner of reqwest's `blocking` module).
//!
//! Each call runs the async operation to completion on the calling thread,
//! while a private runtime thread (`kelp-blocking-runtime`) drives the I/O
//! and timers. Calling it from inside an async runtime is refused with an
//! error instead of deadlocking.
//!
//! ```
//! use kelp::blocking::Connection;
//! use kelp::Queue;
//!
//! let conn = Connection::new("memory://")?;
//! let channel = conn.default_channel()?;
//! let declared = channel.declare_queue(&Queue::new("blocking-doc"))?;
//! let producer = conn.producer().build()?;
//! producer.publish(&"hi").routing_key(declared.name.as_str()).send()?;
//! let message = channel.get(&Queue::new("blocking-doc"), false)?.expect("one message");
//! assert_eq!(message.decode::<String>()?, "hi");
//! message.ack()?;
//! # Ok::<(), kelp::Error>(())
//! ```

mod channel;
mod connection;
mod consumer;
mod forward;
mod message;
mod patterns;
mod producer;
mod wait;

pub use channel::Channel;
pub use connection::{Connection, ConnectionBuilder};
pub use consumer::{Consumer, ConsumerBuilder};
pub use message::Message;
pub use patterns::{
    Broadcast, ConnectionPool, PooledConnection, PooledProducer, ProducerPool, RpcClient, SimpleBuffer,
    SimpleBuilder, SimpleQueue, collect_replies, pools, send_reply,
};
pub use producer::{Producer, ProducerBuilder, Publish};
