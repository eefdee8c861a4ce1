//! The codec layer: how a message body is written and read. Serializers
//! under Kombu's names and content types (with a registry for custom ones
//! and the consumer's accept list), compression under Kombu's MIME types
//! (with a bound on decompressed size), and [`Value`](crate::Value) as a
//! citizen of serde's data model. Uses only the content layer and errors.

pub(crate) mod compression;
pub(crate) mod serialization;
pub(crate) mod value;
