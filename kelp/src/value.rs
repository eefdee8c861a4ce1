//! A dynamic value: message headers, and message payloads when the type is not
//! known in advance (Kombu's `message.payload`).
//!
//! It covers what travels in AMQP field tables, in JSON with Kombu's type
//! extensions (`{"__type__": ..., "__value__": ...}`), in msgpack and in YAML,
//! so that a value read from one can be written to another without loss.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A table of named values: message headers, queue and exchange arguments.
///
/// # Examples
///
/// ```
/// use kelp::{FieldTable, Value};
///
/// let mut headers = FieldTable::new();
/// headers.insert("tenant".into(), "acme".into());
/// headers.insert("attempt".into(), Value::from(2));
/// assert_eq!(headers["attempt"].as_i64(), Some(2));
/// ```
pub type FieldTable = BTreeMap<String, Value>;

/// A dynamically typed value.
///
/// Date, time, UUID and decimal values keep the text form Python's
/// `isoformat()` / `str()` produce, so that they round-trip through Kombu's
/// JSON extensions unchanged.
///
/// # Examples
///
/// ```
/// use kelp::Value;
///
/// let order = Value::from_serialize(&serde_json::json!({"id": 7, "items": ["pen", "ink"]}))?;
/// assert_eq!(order.get("id"), Some(&Value::Int(7)));
/// assert_eq!(order.get("items").and_then(Value::as_array).map(|a| a.len()), Some(2));
/// assert_eq!(order.to_string(), r#"{"id": 7, "items": ["pen", "ink"]}"#);
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum Value {
    /// No value (JSON `null`, AMQP void, Python `None`).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer larger than `i64::MAX`; smaller ones are [`Value::Int`].
    UInt(u64),
    /// A floating point number.
    Float(f64),
    /// An exact decimal number, as text (`"3.14"`).
    Decimal(String),
    /// A text string.
    String(String),
    /// Binary data.
    Bytes(Bytes),
    /// A list of values.
    Array(Vec<Value>),
    /// A table of named values.
    Map(FieldTable),
    /// An AMQP timestamp: seconds since the Unix epoch.
    Timestamp(u64),
    /// A date and time in ISO 8601 text (Kombu `datetime`).
    DateTime(String),
    /// A date in ISO 8601 text (Kombu `date`).
    Date(String),
    /// A time of day in ISO 8601 text (Kombu `time`).
    Time(String),
    /// A UUID as 32 lowercase hex digits (Kombu `uuid`).
    Uuid(String),
}

impl Value {
    /// The text, for [`Value::String`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(kelp::Value::from("acme").as_str(), Some("acme"));
    /// assert_eq!(kelp::Value::from(1).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, for [`Value::Int`] and [`Value::UInt`] values that fit.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Value;
    ///
    /// assert_eq!(Value::from(42_u16).as_i64(), Some(42));
    /// assert_eq!(Value::from(u64::MAX).as_i64(), None); // does not fit
    /// assert_eq!(Value::from(1.5).as_i64(), None);
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            Value::Timestamp(t) => i64::try_from(t).ok(),
            _ => None,
        }
    }

    /// The number as a float, for any numeric value.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Value;
    ///
    /// assert_eq!(Value::from(3).as_f64(), Some(3.0));
    /// assert_eq!(Value::from(0.25).as_f64(), Some(0.25));
    /// ```
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The boolean, for [`Value::Bool`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(kelp::Value::from(true).as_bool(), Some(true));
    /// ```
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The bytes, for [`Value::Bytes`] (and the UTF-8 bytes of a string).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Value;
    ///
    /// assert_eq!(Value::from(vec![1_u8, 2]).as_bytes(), Some(&[1_u8, 2][..]));
    /// assert_eq!(Value::from("ab").as_bytes(), Some(&b"ab"[..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::String(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The table, for [`Value::Map`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{FieldTable, Value};
    ///
    /// let table = Value::from(FieldTable::from([("k".to_string(), Value::from(1))]));
    /// assert_eq!(table.as_map().map(|m| m.len()), Some(1));
    /// ```
    pub fn as_map(&self) -> Option<&FieldTable> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The list, for [`Value::Array`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Value;
    ///
    /// let list = Value::from(vec![Value::from(1), Value::from("two")]);
    /// assert_eq!(list.as_array().map(|items| items.len()), Some(2));
    /// ```
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Look up `key` in a [`Value::Map`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Value;
    ///
    /// let user = Value::from_serialize(&serde_json::json!({"name": "ada"}))?;
    /// assert_eq!(user.get("name").and_then(Value::as_str), Some("ada"));
    /// assert_eq!(user.get("email"), None);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// True for [`Value::Null`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Value;
    ///
    /// assert!(Value::from(None::<i32>).is_null());
    /// assert!(!Value::from(0).is_null());
    /// ```
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Convert any serializable value into a [`Value`].
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Retry {
    ///     attempts: u8,
    ///     last_error: Option<String>,
    /// }
    ///
    /// let value = kelp::Value::from_serialize(&Retry { attempts: 3, last_error: None })?;
    /// assert_eq!(value.get("attempts").and_then(|v| v.as_i64()), Some(3));
    /// assert!(value.get("last_error").is_some_and(|v| v.is_null()));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> crate::Result<Value> {
        value.serialize(ValueSerializer)
    }

    /// Convert this value into a typed value.
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(serde::Deserialize, Debug, PartialEq)]
    /// struct Point {
    ///     x: i64,
    ///     y: i64,
    /// }
    ///
    /// let value = kelp::Value::from_serialize(&serde_json::json!({"x": 1, "y": 2}))?;
    /// let point: Point = value.deserialize_into()?;
    /// assert_eq!(point, Point { x: 1, y: 2 });
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn deserialize_into<T: de::DeserializeOwned>(self) -> crate::Result<T> {
        T::deserialize(self)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Int(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::from(v as u64)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(f64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}

impl From<Bytes> for Value {
    fn from(v: Bytes) -> Value {
        Value::Bytes(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(Bytes::from(v))
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}

impl From<FieldTable> for Value {
    fn from(v: FieldTable) -> Value {
        Value::Map(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl fmt::Display for Value {
    /// A compact, JSON-like rendering for logs and the CLI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Decimal(s)
            | Value::DateTime(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Uuid(s) => f.write_str(s),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::Timestamp(t) => write!(f, "@{t}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(map) => {
                f.write_str("{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

// ---------------------------------------------------------------------------
// serde: Value as a data format citizen (msgpack, yaml, JSON without the
// Kombu extensions; the JSON codec adds those itself).

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            Value::Timestamp(t) => serializer.serialize_u64(*t),
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::String(s)
            | Value::Decimal(s)
            | Value::DateTime(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Uuid(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(map) => {
                let mut m = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .or_else(|_| u64::try_from(v).map(Value::UInt))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(v)))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut table = FieldTable::new();
        while let Some(key) = map.next_key::<MapKey>()? {
            let value = map.next_value()?;
            table.insert(key.0, value);
        }
        Ok(Value::Map(table))
    }
}

/// A map key from any format: msgpack and YAML allow non-string keys, which
/// become their text form (as Python's `json.dumps` would write them).
struct MapKey(String);

impl<'de> Deserialize<'de> for MapKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MapKey, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(MapKey(match value {
            Value::String(s) => s,
            Value::Null => "null".to_owned(),
            Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
            other => other.to_string(),
        }))
    }
}

// ---------------------------------------------------------------------------
// Value as a Deserializer, so `decode::<T>()` works from a dynamic value.

impl<'de> Deserializer<'de> for Value {
    type Error = crate::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> crate::Result<V::Value> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::UInt(u) | Value::Timestamp(u) => visitor.visit_u64(u),
            Value::Float(x) => visitor.visit_f64(x),
            Value::String(s)
            | Value::Decimal(s)
            | Value::DateTime(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Uuid(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b.to_vec()),
            Value::Array(items) => visitor.visit_seq(de::value::SeqDeserializer::new(items.into_iter())),
            Value::Map(map) => visitor.visit_map(de::value::MapDeserializer::new(map.into_iter())),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> crate::Result<V::Value> {
        match self {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> crate::Result<V::Value> {
        match self {
            // Vec<u8> asks for a sequence: give it the bytes one by one.
            Value::Bytes(b) => visitor.visit_seq(de::value::SeqDeserializer::new(b.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> crate::Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> crate::Result<V::Value> {
        match self {
            Value::String(s) => visitor.visit_enum(de::value::StringDeserializer::new(s)),
            Value::Map(map) if map.len() == 1 => {
                visitor.visit_enum(de::value::MapAccessDeserializer::new(
                    de::value::MapDeserializer::new(map.into_iter()),
                ))
            }
            other => Err(de::Error::custom(format_args!(
                "expected an enum as a string or a one-entry map, found {other}"
            ))),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple
        tuple_struct map struct identifier ignored_any
    }
}

impl<'de> de::IntoDeserializer<'de, crate::Error> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

impl de::Error for crate::Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        crate::Error::decode(msg.to_string())
    }
}

impl serde::ser::Error for crate::Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        crate::Error::encode(msg.to_string())
    }
}

// ---------------------------------------------------------------------------
// A Serializer producing Value, so any `T: Serialize` can become a payload
// for a custom serializer or a header.

struct ValueSerializer;

struct SeqBuilder(Vec<Value>);
struct MapBuilder {
    map: FieldTable,
    key: Option<String>,
}
struct VariantBuilder<T> {
    name: &'static str,
    inner: T,
}

fn key_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = crate::Error;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder<SeqBuilder>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantBuilder<MapBuilder>;

    fn serialize_bool(self, v: bool) -> crate::Result<Value> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_u8(self, v: u8) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_f32(self, v: f32) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_f64(self, v: f64) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_char(self, v: char) -> crate::Result<Value> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> crate::Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> crate::Result<Value> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn serialize_none(self) -> crate::Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> crate::Result<Value> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> crate::Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> crate::Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> crate::Result<Value> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> crate::Result<Value> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> crate::Result<Value> {
        let mut map = FieldTable::new();
        map.insert(variant.to_owned(), value.serialize(ValueSerializer)?);
        Ok(Value::Map(map))
    }
    fn serialize_seq(self, len: Option<usize>) -> crate::Result<SeqBuilder> {
        Ok(SeqBuilder(Vec::with_capacity(len.unwrap_or(0).min(4096))))
    }
    fn serialize_tuple(self, len: usize) -> crate::Result<SeqBuilder> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> crate::Result<SeqBuilder> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> crate::Result<VariantBuilder<SeqBuilder>> {
        Ok(VariantBuilder {
            name: variant,
            inner: self.serialize_seq(Some(len))?,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> crate::Result<MapBuilder> {
        Ok(MapBuilder {
            map: FieldTable::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> crate::Result<MapBuilder> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> crate::Result<VariantBuilder<MapBuilder>> {
        Ok(VariantBuilder {
            name: variant,
            inner: self.serialize_map(Some(len))?,
        })
    }
}

impl serde::ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = crate::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> crate::Result<()> {
        self.0.push(value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> crate::Result<Value> {
        Ok(Value::Array(self.0))
    }
}

impl serde::ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = crate::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> crate::Result<()> {
        serde::ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> crate::Result<Value> {
        serde::ser::SerializeSeq::end(self)
    }
}

impl serde::ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = crate::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> crate::Result<()> {
        serde::ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> crate::Result<Value> {
        serde::ser::SerializeSeq::end(self)
    }
}

impl serde::ser::SerializeTupleVariant for VariantBuilder<SeqBuilder> {
    type Ok = Value;
    type Error = crate::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> crate::Result<()> {
        serde::ser::SerializeSeq::serialize_element(&mut self.inner, value)
    }
    fn end(self) -> crate::Result<Value> {
        let mut map = FieldTable::new();
        map.insert(self.name.to_owned(), Value::Array(self.inner.0));
        Ok(Value::Map(map))
    }
}

impl serde::ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = crate::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> crate::Result<()> {
        self.key = Some(key_string(key.serialize(ValueSerializer)?));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> crate::Result<()> {
        let key = self
            .key
            .take()
            .ok_or_else(|| crate::Error::encode("map value without a key"))?;
        self.map.insert(key, value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> crate::Result<Value> {
        Ok(Value::Map(self.map))
    }
}

impl serde::ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = crate::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> crate::Result<()> {
        self.map.insert(key.to_owned(), value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> crate::Result<Value> {
        Ok(Value::Map(self.map))
    }
}

impl serde::ser::SerializeStructVariant for VariantBuilder<MapBuilder> {
    type Ok = Value;
    type Error = crate::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> crate::Result<()> {
        serde::ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }
    fn end(self) -> crate::Result<Value> {
        let mut map = FieldTable::new();
        map.insert(self.name.to_owned(), Value::Map(self.inner.map));
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, serde::Serialize, Deserialize)]
    struct Order {
        id: u32,
        items: Vec<String>,
        note: Option<String>,
        kind: Kind,
    }

    #[derive(Debug, PartialEq, serde::Serialize, Deserialize)]
    enum Kind {
        Retail,
        Bulk { pallets: u8 },
    }

    #[test]
    fn typed_values_round_trip_through_value() {
        for kind in [Kind::Retail, Kind::Bulk { pallets: 3 }] {
            let order = Order {
                id: 7,
                items: vec!["a".into(), "b".into()],
                note: None,
                kind,
            };
            let value = Value::from_serialize(&order).unwrap();
            assert_eq!(value.get("id"), Some(&Value::Int(7)));
            assert_eq!(value.get("note"), Some(&Value::Null));
            let back: Order = value.deserialize_into().unwrap();
            assert_eq!(back, order);
        }
    }

    #[test]
    fn bytes_become_vec_u8_and_large_unsigned_stays_exact() {
        let v: Vec<u8> = Value::Bytes(Bytes::from_static(b"\x00\xff")).deserialize_into().unwrap();
        assert_eq!(v, vec![0, 255]);
        assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
        assert_eq!(Value::from(5u64), Value::Int(5));
        let back: u64 = Value::UInt(u64::MAX).deserialize_into().unwrap();
        assert_eq!(back, u64::MAX);
    }

    #[test]
    fn wrong_shape_is_a_decode_error_not_a_panic() {
        let err = Value::from("x").deserialize_into::<u32>().unwrap_err();
        assert!(err.is_decode(), "{err}");
    }
}
