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
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod codec;
mod content;
mod error;
mod event;
mod model;
mod patterns;
mod recovery;
mod transport;

mod url;

#[cfg(feature = "blocking")]
pub mod blocking;

pub use codec::compression::Compression;
pub use codec::serialization::{Accept, Serializer};
pub use content::exchange::ExchangeKind;
pub use content::message::{DeliveryInfo, Properties, ReturnedMessage};
pub use content::text::SharedStr;
pub use content::value::{FieldTable, Value};
pub use error::{Error, ErrorKind, Recovery, Result, reply_code};
pub use event::Event;
pub use model::channel::Channel;
pub use model::connection::{Connection, ConnectionBuilder};
pub use model::consumer::{Consumer, ConsumerBuilder, DecodeErrorHandler};
pub use model::entity::{Binding, DeclaredQueue, DeliveryMode, Entity, Exchange, Queue};
pub use model::message::{Message, MessageState};
pub use model::producer::{Confirmation, Producer, ProducerBuilder, Publish, ReturnCallback};
pub use patterns::dedup::Deduplicator;
pub use patterns::pools::{ConnectionPool, PooledConnection, PooledProducer, ProducerPool};
pub use patterns::rpc::{Broadcast, DIRECT_REPLY_TO, RpcClient, collect_replies, send_reply};
pub use patterns::simple::{SimpleBuffer, SimpleBuilder, SimpleQueue};
pub use patterns::worker::{StopHandle, Worker, WorkerBuilder};
pub use recovery::failover::{CustomFailover, FailoverStrategy};
pub use recovery::retry::{ErrorCallback, RetryPolicy};
pub use transport::api::Capabilities;
pub use url::{BrokerUrl, TransportKind};

/// Serializers beyond the built-in ones: register a codec under a name and
/// content type, and decode bodies by content type without a consumer.
pub mod serialization {
    pub use crate::codec::serialization::{Codec, decode, decode_value, register, unregister};
}

/// Kombu's compression methods and the bound on decompressed size.
pub mod compression {
    pub use crate::codec::compression::DEFAULT_DECOMPRESSION_LIMIT;
}

/// Kombu's global pools: one connection pool and one producer pool per
/// URL, shared by the whole process.
pub mod pools {
    pub use crate::patterns::pools::{DEFAULT_LIMIT, connections, limit, producers, reset, set_limit};
}

/// Entry points for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    #[cfg(feature = "amqp")]
    pub use crate::transport::amqp::fuzzing::*;
    #[cfg(feature = "redis")]
    pub use crate::transport::redis::fuzzing::*;

    /// Parse a broker URL and a `;` list; returns how many URLs the list
    /// holds. Every accessor must work on what parses, and the unmasked
    /// printed form, options included, must parse back to an equal URL.
    pub fn url(text: &str) -> crate::Result<usize> {
        if let Ok(url) = crate::url::BrokerUrl::parse(text) {
            let _ = (url.heartbeat(), url.connect_timeout(), url.query_bool("ssl"));
            let _ = (url.ssl_options(), url.redis_db(), url.to_string(), format!("{url:?}"));
            let printed = url.as_uri_with_query(true);
            match crate::url::BrokerUrl::parse(&printed) {
                Ok(again) => assert!(again == url, "{url:?} printed as {printed:?} parses as {again:?}"),
                Err(e) => panic!("a URL kelp printed does not parse: {url:?} as {printed:?}: {e}"),
            }
        }
        crate::url::BrokerUrl::parse_list(text).map(|urls| urls.len())
    }
}
