//! A dynamic value: message headers, and message payloads when the type is not
//! known in advance (Kombu's `message.payload`).
//!
//! It covers what travels in AMQP field tables, in JSON with Kombu's type
//! extensions (`{"__type__": ..., "__value__": ...}`), in msgpack and in YAML,
//! so that a value read from one can be written to another without loss.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

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
