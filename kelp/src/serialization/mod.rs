//! Serializers with Kombu's names and content types. (Contract stub: the
//! implementation replaces every `todo!()`; signatures are fixed.)

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, Value};

/// A codec for a custom serializer registered with [`register`].
pub trait Codec: Send + Sync + 'static {
    /// Encode a dynamic value into a body.
    fn encode(&self, value: &Value) -> Result<Bytes>;
    /// Decode a body into a dynamic value.
    fn decode(&self, body: &[u8]) -> Result<Value>;
}

/// A serializer: json (the default), msgpack, yaml, raw, text, or a custom one.
#[derive(Clone)]
pub struct Serializer {
    _p: (),
}

impl Serializer {
    /// `json`: `application/json`, `utf-8`.
    pub fn json() -> Serializer { todo!() }
    /// `msgpack`: `application/x-msgpack`, `binary`.
    pub fn msgpack() -> Serializer { todo!() }
    /// `yaml`: `application/x-yaml`, `utf-8`.
    pub fn yaml() -> Serializer { todo!() }
    /// `raw`: `application/data`, `binary`.
    pub fn raw() -> Serializer { todo!() }
    /// `text`: `text/plain`, `utf-8`.
    pub fn text() -> Serializer { todo!() }
    /// Look a serializer up by name or content type.
    pub fn from_name(_name: &str) -> Result<Serializer> { todo!() }
    /// The serializer's name.
    pub fn name(&self) -> &str { todo!() }
    /// The content type it writes.
    pub fn content_type(&self) -> &str { todo!() }
    /// The content encoding it writes.
    pub fn content_encoding(&self) -> &str { todo!() }
    /// Serialize a value.
    pub fn encode<T: Serialize + ?Sized>(&self, _value: &T) -> Result<Bytes> { todo!() }
}

impl Default for Serializer {
    fn default() -> Self { Serializer::json() }
}

impl std::fmt::Debug for Serializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.name()) }
}

/// Deserialize a body into `T` by its content type.
pub fn decode<T: DeserializeOwned>(_content_type: Option<&str>, _content_encoding: Option<&str>, _body: &[u8]) -> Result<T> { todo!() }

/// Deserialize a body into a dynamic [`Value`] by its content type.
pub fn decode_value(_content_type: Option<&str>, _content_encoding: Option<&str>, _body: &[u8]) -> Result<Value> { todo!() }

/// Register a custom serializer.
pub fn register(_name: &str, _content_type: &str, _content_encoding: &str, _codec: Arc<dyn Codec>) -> Result<()> { todo!() }

/// Remove a custom serializer.
pub fn unregister(_name: &str) -> Result<()> { todo!() }

/// The content types a consumer accepts.
#[derive(Clone, Debug)]
pub struct Accept {
    _p: (),
}

impl Accept {
    /// An accept list of serializer names or content types.
    pub fn new<I, S>(_names: I) -> Result<Accept> where I: IntoIterator<Item = S>, S: AsRef<str> { todo!() }
    /// Accept every registered serializer.
    pub fn all() -> Accept { todo!() }
    /// True if a message of this content type may be decoded.
    pub fn allows(&self, _content_type: Option<&str>) -> bool { todo!() }
    /// `Ok` if allowed, else a `ContentDisallowed` error.
    pub fn check(&self, _content_type: Option<&str>) -> Result<()> { todo!() }
}

impl Default for Accept {
    fn default() -> Self { Accept::all() }
}
