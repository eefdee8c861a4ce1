//! kelp: Kombu's messaging model for Rust.
#![warn(missing_docs)]

mod error;
mod message;
mod shared_str;
mod value;

pub mod compression;
pub mod serialization;
pub mod url;

pub use error::{reply_code, Error, ErrorKind, Recovery, Result};
pub use message::{DeliveryInfo, Properties, ReturnedMessage};
pub use shared_str::SharedStr;
pub use url::BrokerUrl;
pub use value::{FieldTable, Value};
