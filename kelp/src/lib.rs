//! kelp: Kombu's messaging model for Rust.
//!
//! One model — [`Connection`], [`Exchange`], [`Queue`], [`Producer`],
//! [`Consumer`], [`Message`] — over several brokers: `memory://` (an
//! embedded broker, the default), and more transports behind the same API.
//!
//! ```
//! use kelp::{Connection, Exchange, Queue};
//!
//! # async fn demo() -> kelp::Result<()> {
//! let conn = Connection::new("memory://")?;
//! let exchange = Exchange::direct("media");
//! let queue = Queue::new("video").exchange(exchange.clone()).routing_key("video");
//!
//! let producer = conn.producer().exchange(exchange).build().await?;
//! let mut consumer = conn.consumer([queue]).prefetch_count(10).build().await?;
//!
//! producer.publish(&serde_json::json!({"name": "cat.mp4"})).routing_key("video").send().await?;
//!
//! let message = consumer.next().await.expect("a message")?;
//! let body: serde_json::Value = message.decode()?;
//! assert_eq!(body["name"], "cat.mp4");
//! message.ack().await?;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
#![warn(missing_docs)]

mod channel;
mod connection;
mod consumer;
mod dedup;
mod entity;
mod error;
mod event;
mod failover;
mod message;
mod patterns;
mod producer;
mod recovery;
mod retry;
mod shared_str;
mod simple;
mod transport;
mod util;
mod value;
mod worker;

pub mod blocking;
pub mod compression;
pub mod serialization;
pub mod url;
pub mod pools;

pub use channel::Channel;
pub use compression::Compression;
pub use connection::{Connection, ConnectionBuilder};
pub use consumer::{Consumer, ConsumerBuilder, DecodeErrorHandler};
pub use dedup::Deduplicator;
pub use entity::{Binding, DeclaredQueue, DeliveryMode, Entity, Exchange, ExchangeKind, Queue};
pub use error::{reply_code, Error, ErrorKind, Recovery, Result};
pub use event::Event;
pub use failover::{CustomFailover, FailoverStrategy};
pub use message::{DeliveryInfo, Message, MessageState, Properties, ReturnedMessage};
pub use patterns::{Broadcast, DIRECT_REPLY_TO, RpcClient, collect_replies, send_reply};
pub use pools::{ConnectionPool, PooledConnection, PooledProducer, ProducerPool};
pub use producer::{Confirmation, Producer, ProducerBuilder, Publish, ReturnCallback};
pub use retry::{ErrorCallback, RetryPolicy};
pub use serialization::{Accept, Serializer};
pub use shared_str::SharedStr;
pub use simple::{SimpleBuffer, SimpleBuilder, SimpleQueue};
pub use url::BrokerUrl;
pub use value::{FieldTable, Value};
pub use worker::{StopHandle, Worker, WorkerBuilder};

/// Entry points for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::transport::amqp::fuzzing::*;
    pub use crate::transport::redis::fuzzing::*;

    /// Parse a broker URL and a `;` list; returns how many URLs the list
    /// holds. Every accessor must work on what parses, and the unmasked
    /// printed form, options included, must parse back to an equal URL.
    pub fn url(text: &str) -> crate::Result<usize> {
        if let Ok(url) = crate::BrokerUrl::parse(text) {
            let _ = (url.heartbeat(), url.connect_timeout(), url.query_bool("ssl"));
            let _ = (url.ssl_options(), url.redis_db(), url.to_string(), format!("{url:?}"));
            let printed = url.as_uri_with_query(true);
            match crate::BrokerUrl::parse(&printed) {
                Ok(again) => assert!(again == url, "{url:?} printed as {printed:?} parses as {again:?}"),
                Err(e) => panic!("a URL kelp printed does not parse: {url:?} as {printed:?}: {e}"),
            }
        }
        crate::BrokerUrl::parse_list(text).map(|urls| urls.len())
    }
}
