//! `redis://`, `rediss://`, `redis+socket://` and `sentinel://`: kelp's
//! model on Redis, storing messages exactly as Kombu's Redis transport does
//! (see [`envelope`] and [`keys`]), so Python and Rust services share queues.
//!
//! Exchanges are emulated: bindings live in Kombu's binding sets, topic
//! bindings match AMQP-exactly (the routing rules the memory transport
//! uses), fanout goes over pub/sub (best-effort, as in Kombu: a consumer
//! that is not connected misses the message). Acks are emulated with
//! Kombu's `unacked` hash and `unacked_index` sorted set; a message not
//! acked within the visibility timeout is put back by any live consumer.
//! Unlike Kombu, a consumer moves a message atomically (LMOVE) into a
//! processing list of its own before recording it as unacked
//! (`reliable_fetch`, on by default), so a consumer killed at any instant
//! loses nothing: any live kelp consumer gives back a dead one's
//! processing lists. No script touches the messages: Redis's Lua hashes
//! every byte of every string it handles, which made a scripted fetch cost
//! several times a plain pop.

mod channel;
mod client;
mod connection;
mod envelope;
mod fanout;
mod fetch;
pub(crate) mod fuzzing;
mod health;
mod keys;
mod publish;
mod queues;
mod restore;
mod route;
mod scripts;
mod shared;
mod tls;

pub(crate) use channel::RedisChannel;
pub(crate) use connection::RedisTransport;
