//! The recovery layer: the supervisor that owns a connection's broker link
//! and keeps it alive. It picks brokers by the failover strategy, retries
//! by the retry policy, records what the application declared and consumed
//! as plain transport arguments, keeps an optional warm standby, and after
//! a reconnect replays the record before anyone sees the new connection.
//! It knows the transports below it and nothing of the model above.
//!
//! Files, bottom to top: `retry` and `failover` (policies), `topology`
//! (the record of declarations), `active` (one live broker connection),
//! `channel` (a supervised channel), `subscription` (a supervised
//! consumer), `registry` (all of the above for one connection), `restore`
//! and `standby` (replaying it), `settings`, and `supervisor`.

pub(crate) mod active;
pub(crate) mod channel;
pub(crate) mod failover;
pub(crate) mod registry;
pub(crate) mod restore;
pub(crate) mod retry;
pub(crate) mod settings;
pub(crate) mod standby;
pub(crate) mod subscription;
pub(crate) mod supervisor;
pub(crate) mod topology;
