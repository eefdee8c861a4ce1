//! The transport layer: one internal interface every broker plugs into
//! ([`api`]), the data that crosses it ([`types`]), and one folder per
//! broker. A transport knows nothing of the model above it: it declares,
//! publishes, consumes and acknowledges; connections, recovery and the
//! user's API are the upper layers' business.
//!
//! The model only talks to [`AnyTransport`] / [`AnyChannel`] ([`any`]),
//! which dispatch statically to the concrete transport. The exchange
//! routing rules shared by the transports that emulate a broker (memory,
//! Redis) live in [`routing`]; publisher confirms in [`confirm`].

#[cfg(feature = "amqp")]
pub(crate) mod amqp;
pub(crate) mod any;
pub(crate) mod api;
// Confirms tracked by delivery tag: AMQP's; memory and Redis confirm otherwise.
#[cfg_attr(not(feature = "amqp"), allow(dead_code))]
pub(crate) mod confirm;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
pub(crate) mod routing;
// Some connect options are read by one network transport only.
#[cfg_attr(not(all(feature = "amqp", feature = "redis")), allow(dead_code))]
pub(crate) mod types;

pub(crate) use any::{AnyChannel, AnyTransport};
pub(crate) use api::{Capabilities, Confirm};
pub(crate) use types::{
    BindArgs, CancelReason, ConnectOptions, ConsumeArgs, ConsumerEvent, Delivery, DeliverySender, ExchangeDeclare,
    OutgoingMessage, QueueDeclare, QueueDeclareOk,
};
