//! Serializers with Kombu's names and content types.
//!
//! | name | content type | content encoding | format |
//! | --- | --- | --- | --- |
//! | `json` (default) | `application/json` | `utf-8` | JSON as Kombu's `json.dumps` writes it, with its type extensions |
//! | `msgpack` | `application/x-msgpack` | `binary` | MessagePack, `str`/`bin` types kept apart |
//! | `yaml` | `application/x-yaml` | `utf-8` | YAML readable by `yaml.safe_load` |
//! | `raw` | `application/data` | `binary` | the bytes (or UTF-8 text) as they are |
//! | `text` | `text/plain` | `utf-8` | a string |
//!
//! A [`Serializer`] is resolved once (by [`Serializer::from_name`] or a
//! constructor) and then used for any number of messages without a lookup.
//! [`decode`] and [`decode_value`] dispatch on the message's content type:
//! the built-in types are matched without any lock; only an unknown content
//! type consults the registry of custom serializers ([`register`]).
//!
//! Bodies whose content type has no decoder are handled as Kombu does: with a
//! textual `content_encoding` they decode to text, with `binary` to bytes.

mod body;
pub(crate) mod json;
#[cfg(feature = "msgpack")]
mod msgpack;
#[cfg(feature = "yaml")]
mod yaml;

// Written for every serializer and compression method.
#[cfg(all(test, feature = "msgpack", feature = "yaml", feature = "compression"))]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::content::value::Value;

use crate::error::{Error, ErrorKind, Result};

use body::{Capture, Charset, RawBody};

/// A codec for a custom serializer registered with [`register`].
///
/// It works on [`Value`]s: kelp converts typed bodies to and from them.
///
/// # Examples
///
/// A codec for newline-separated text lines:
///
/// ```
/// use bytes::Bytes;
/// use kelp::Value;
/// use kelp::serialization::Codec;
///
/// struct Lines;
///
/// impl Codec for Lines {
///     fn encode(&self, value: &Value) -> kelp::Result<Bytes> {
///         let lines: Vec<String> = value.clone().deserialize_into()?;
///         Ok(Bytes::from(lines.join("\n")))
///     }
///     fn decode(&self, body: &[u8]) -> kelp::Result<Value> {
///         let text = String::from_utf8_lossy(body);
///         Ok(Value::Array(text.lines().map(Value::from).collect()))
///     }
/// }
///
/// let body = Lines.encode(&Value::from(vec![Value::from("a"), Value::from("b")]))?;
/// assert_eq!(body, "a\nb");
/// assert_eq!(Lines.decode(&body)?.as_array().map(|l| l.len()), Some(2));
/// # Ok::<(), kelp::Error>(())
/// ```
pub trait Codec: Send + Sync + 'static {
    /// Encode a dynamic value into a body.
    fn encode(&self, value: &Value) -> Result<Bytes>;
    /// Decode a body into a dynamic value.
    fn decode(&self, body: &[u8]) -> Result<Value>;
}

/// The content type Kombu assumes when a message has none.
const DEFAULT_CONTENT_TYPE: &str = "application/data";

/// Content types Kombu always lets through an accept list (`TRUSTED_CONTENT`).
const TRUSTED: [&str; 2] = ["application/data", "application/text"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Builtin {
    Json,
    Msgpack,
    Yaml,
    Raw,
    Text,
}

impl Builtin {
    const ALL: [Builtin; 5] = [
        Builtin::Json,
        Builtin::Msgpack,
        Builtin::Yaml,
        Builtin::Raw,
        Builtin::Text,
    ];

    fn name(self) -> &'static str {
        match self {
            Builtin::Json => "json",
            Builtin::Msgpack => "msgpack",
            Builtin::Yaml => "yaml",
            Builtin::Raw => "raw",
            Builtin::Text => "text",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Builtin::Json => "application/json",
            Builtin::Msgpack => "application/x-msgpack",
            Builtin::Yaml => "application/x-yaml",
            Builtin::Raw => "application/data",
            Builtin::Text => "text/plain",
        }
    }

    /// The error for a serializer whose feature was left out of the build.
    #[allow(dead_code)] // unused when every serializer is compiled in
    fn compiled_out(self) -> Error {
        Error::feature_missing(format_args!("the {} serializer ({})", self.name(), self.content_type()), self.name())
    }

    fn content_encoding(self) -> &'static str {
        match self {
            Builtin::Json | Builtin::Yaml | Builtin::Text => "utf-8",
            Builtin::Msgpack | Builtin::Raw => "binary",
        }
    }

    fn by_name(name: &str) -> Option<Builtin> {
        Builtin::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name))
    }

    fn by_content_type(content_type: &str) -> Option<Builtin> {
        Builtin::ALL
            .into_iter()
            .find(|b| b.content_type().eq_ignore_ascii_case(content_type))
    }
}

/// A registered custom serializer.
struct Custom {
    name: String,
    content_type: String,
    content_encoding: String,
    codec: Arc<dyn Codec>,
}

#[derive(Clone)]
enum Kind {
    Builtin(Builtin),
    Custom(Arc<Custom>),
}

/// A serializer: json (the default), msgpack, yaml, raw, text, or a custom one.
///
/// Cheap to clone. A custom serializer keeps its codec even if it is later
/// unregistered.
///
/// Producers use one to write bodies ([`ProducerBuilder::serializer`]);
/// it can also be used on its own.
///
/// [`ProducerBuilder::serializer`]: crate::ProducerBuilder::serializer
///
/// # Examples
///
/// ```
/// use kelp::Serializer;
/// use kelp::serialization::decode;
///
/// let serializer = Serializer::from_name("json")?;
/// let body = serializer.encode(&("ada", 36))?;
/// let back: (String, u32) = decode(Some(serializer.content_type()), None, &body)?;
/// assert_eq!(back, ("ada".to_string(), 36));
/// // msgpack and yaml need their features to encode and decode.
/// assert_eq!(Serializer::from_name("msgpack")?.content_type(), "application/x-msgpack");
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone)]
pub struct Serializer {
    kind: Kind,
}

impl Serializer {
    const fn builtin(b: Builtin) -> Serializer {
        Serializer {
            kind: Kind::Builtin(b),
        }
    }

    /// `json`: `application/json`, `utf-8`.
    ///
    /// Writes what Kombu's `json.dumps` writes: `", "` and `": "` separators,
    /// non-ASCII escaped as `\uXXXX`, floats as Python's `repr`, and bytes
    /// (`serialize_bytes`, e.g. [`Bytes`] or `serde_bytes`) as Kombu's
    /// `{"__type__": "bytes", ...}` extension. Non-finite floats become
    /// `null` (Python would write `NaN`, which is not JSON).
    ///
    /// # Examples
    ///
    /// ```
    /// let body = kelp::Serializer::json().encode(&serde_json::json!({"city": "Zürich", "n": 1}))?;
    /// assert_eq!(body, r#"{"city": "Z\u00fcrich", "n": 1}"#);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn json() -> Serializer {
        Serializer::builtin(Builtin::Json)
    }

    /// `msgpack`: `application/x-msgpack`, `binary`.
    ///
    /// Structs are maps with field names; strings and bytes keep distinct
    /// msgpack types, as Kombu's `packb(use_bin_type=True)` writes them.
    ///
    /// Smaller and faster to read than JSON, and it keeps bytes as bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Serializer;
    ///
    /// let msgpack = Serializer::msgpack();
    /// assert_eq!(msgpack.content_type(), "application/x-msgpack");
    /// let body = msgpack.encode(&[1, 2, 3])?;
    /// assert_eq!(body.as_ref(), [0x93, 1, 2, 3]); // a 3-element array
    /// # Ok::<(), kelp::Error>(())
    /// ```
    #[cfg(feature = "msgpack")]
    pub fn msgpack() -> Serializer {
        Serializer::builtin(Builtin::Msgpack)
    }

    /// `yaml`: `application/x-yaml`, `utf-8`.
    ///
    /// Strings that YAML 1.1 would read as something else (`yes`, `1:30`,
    /// `2024-01-02`...) are quoted, so Python's `safe_load` reads back what
    /// was written; bytes are `!!binary`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Serializer;
    /// use kelp::serialization::decode;
    ///
    /// let yaml = Serializer::yaml();
    /// // "no" is a boolean to YAML 1.1 readers unless quoted; kelp quotes it.
    /// let body = yaml.encode(&vec!["yes", "no"])?;
    /// let back: Vec<String> = decode(Some(yaml.content_type()), None, &body)?;
    /// assert_eq!(back, ["yes", "no"]);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    #[cfg(feature = "yaml")]
    pub fn yaml() -> Serializer {
        Serializer::builtin(Builtin::Yaml)
    }

    /// `raw`: `application/data`, `binary`.
    ///
    /// The value must serialize as bytes ([`Bytes`], `serde_bytes`,
    /// `Vec<u8>` / `[u8]`) or as a string (written as UTF-8).
    ///
    /// # Examples
    ///
    /// ```
    /// let raw = kelp::Serializer::raw();
    /// assert_eq!(raw.encode(&vec![0xde_u8, 0xad])?.as_ref(), [0xde, 0xad]);
    /// assert_eq!(raw.encode("text")?, "text");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn raw() -> Serializer {
        Serializer::builtin(Builtin::Raw)
    }

    /// `text`: `text/plain`, `utf-8`.
    ///
    /// The value must serialize as a string. This is what Kombu sends for a
    /// `str` body published without a serializer.
    ///
    /// # Examples
    ///
    /// ```
    /// let text = kelp::Serializer::text();
    /// assert_eq!(text.encode("hello")?, "hello"); // no JSON quotes
    /// assert!(text.encode(&42).unwrap_err().is_encode()); // not a string
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn text() -> Serializer {
        Serializer::builtin(Builtin::Text)
    }

    /// Look a serializer up by name or content type.
    ///
    /// Built-in names and content types match regardless of ASCII case;
    /// custom ones are looked up in the registry (this is the only lookup:
    /// the returned value is used without one). An unknown name is a
    /// [`Config`](ErrorKind::Config) error listing the known names.
    ///
    /// Handy when the serializer comes from configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Serializer;
    ///
    /// assert_eq!(Serializer::from_name("YAML")?.name(), "yaml");
    /// assert_eq!(Serializer::from_name("application/json")?.name(), "json");
    /// assert!(Serializer::from_name("pickle").unwrap_err().is_config());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn from_name(name: &str) -> Result<Serializer> {
        let key = name.trim();
        let base = base_type(key);
        if let Some(b) = Builtin::by_name(key).or_else(|| Builtin::by_content_type(base)) {
            return Ok(Serializer::builtin(b));
        }
        if let Some(custom) =
            find_custom(|c| c.name == key || c.content_type.eq_ignore_ascii_case(base))
        {
            return Ok(Serializer {
                kind: Kind::Custom(custom),
            });
        }
        Err(Error::config(format!(
            "unknown serializer {name:?}; known: {}",
            known_names().join(", ")
        )))
    }

    /// The serializer's name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(kelp::Serializer::default().name(), "json");
    /// ```
    pub fn name(&self) -> &str {
        match &self.kind {
            Kind::Builtin(b) => b.name(),
            Kind::Custom(c) => &c.name,
        }
    }

    /// The content type it writes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(kelp::Serializer::text().content_type(), "text/plain");
    /// ```
    pub fn content_type(&self) -> &str {
        match &self.kind {
            Kind::Builtin(b) => b.content_type(),
            Kind::Custom(c) => &c.content_type,
        }
    }

    /// The content encoding it writes.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Serializer;
    ///
    /// assert_eq!(Serializer::json().content_encoding(), "utf-8");
    /// assert_eq!(Serializer::from_name("msgpack")?.content_encoding(), "binary");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn content_encoding(&self) -> &str {
        match &self.kind {
            Kind::Builtin(b) => b.content_encoding(),
            Kind::Custom(c) => &c.content_encoding,
        }
    }

    /// Serialize a value.
    ///
    /// A [`Value`] goes through its plain serde form here, in which dates,
    /// times, decimals and UUIDs are strings; use
    /// [`encode_value`](Serializer::encode_value) to write them as Kombu's
    /// JSON type extensions instead. A custom serializer receives the value
    /// converted with [`Value::from_serialize`].
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Point {
    ///     x: i32,
    ///     y: i32,
    /// }
    ///
    /// let body = kelp::Serializer::json().encode(&Point { x: 1, y: -2 })?;
    /// assert_eq!(body, r#"{"x": 1, "y": -2}"#);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        match &self.kind {
            Kind::Builtin(Builtin::Json) => json::to_bytes(value)
                .map_err(|e| Error::encode("cannot serialize the body as json").with_source(e)),
            #[cfg(feature = "msgpack")]
            Kind::Builtin(Builtin::Msgpack) => msgpack::encode(value),
            #[cfg(feature = "yaml")]
            Kind::Builtin(Builtin::Yaml) => yaml::encode(value),
            #[cfg(not(feature = "msgpack"))]
            Kind::Builtin(Builtin::Msgpack) => Err(Builtin::Msgpack.compiled_out()),
            #[cfg(not(feature = "yaml"))]
            Kind::Builtin(Builtin::Yaml) => Err(Builtin::Yaml.compiled_out()),
            Kind::Builtin(Builtin::Raw) => body::capture(value, Capture::Raw),
            Kind::Builtin(Builtin::Text) => body::capture(value, Capture::Text),
            Kind::Custom(c) => c.codec.encode(&Value::from_serialize(value)?),
        }
    }

    /// Serialize a dynamic value, keeping its types.
    ///
    /// With json, [`Value::DateTime`], [`Value::Date`], [`Value::Time`],
    /// [`Value::Decimal`] and [`Value::Uuid`] are written as Kombu's type
    /// extensions (so Python receives `datetime`, `Decimal`, `UUID`...), and
    /// [`Value::Timestamp`] as a UTC `datetime` (`2024-01-02T03:04:05+00:00`).
    /// This is the inverse of [`decode_value`]. A custom codec receives the
    /// value as it is. Other serializers write the same as
    /// [`encode`](Serializer::encode).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Serializer, Value};
    ///
    /// let price = Value::Decimal("9.99".into());
    /// let body = Serializer::json().encode_value(&price)?;
    /// assert_eq!(body, r#"{"__type__": "decimal", "__value__": "9.99"}"#);
    /// // Python's Kombu reads this as Decimal("9.99"), and so does kelp:
    /// let back = kelp::serialization::decode_value(Some("application/json"), None, &body)?;
    /// assert_eq!(back, price);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn encode_value(&self, value: &Value) -> Result<Bytes> {
        match &self.kind {
            Kind::Builtin(Builtin::Json) => json::to_bytes(&json::KombuJson(value))
                .map_err(|e| Error::encode("cannot serialize the body as json").with_source(e)),
            Kind::Custom(c) => c.codec.encode(value),
            Kind::Builtin(_) => self.encode(value),
        }
    }
}

impl Default for Serializer {
    fn default() -> Self {
        Serializer::json()
    }
}

impl std::fmt::Debug for Serializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The media type without parameters (`application/json; charset=utf-8` →
/// `application/json`); missing or empty means Kombu's `application/data`.
fn base_type(content_type: &str) -> &str {
    let t = content_type.split(';').next().unwrap_or_default().trim();
    if t.is_empty() {
        DEFAULT_CONTENT_TYPE
    } else {
        t
    }
}

fn effective_type(content_type: Option<&str>) -> &str {
    base_type(content_type.unwrap_or(DEFAULT_CONTENT_TYPE))
}

/// How a body of a given content type is decoded.
enum Decoder {
    Builtin(Builtin),
    Custom(Arc<dyn Codec>),
    /// No decoder: text or bytes by the content encoding, as in Kombu.
    None,
}

fn decoder_for(content_type: &str) -> Decoder {
    // Built-ins first, without touching the registry.
    match Builtin::by_content_type(content_type) {
        Some(b @ (Builtin::Json | Builtin::Msgpack | Builtin::Yaml)) => Decoder::Builtin(b),
        Some(Builtin::Raw | Builtin::Text) => Decoder::None,
        None => find_custom(|c| c.content_type.eq_ignore_ascii_case(content_type))
            .map_or(Decoder::None, |c| Decoder::Custom(Arc::clone(&c.codec))),
    }
}

fn decode_error(
    content_type: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::decode(format!("cannot decode the {content_type} body")).with_source(e)
}

/// Deserialize a body into `T` by its content type.
///
/// - `application/json`: straight into `T` with serde_json; if the body
///   holds Kombu's type extensions (`__type__`), they are first replaced by
///   their plain forms: dates, times and decimals become their text, UUIDs
///   their hyphenated text, bytes a byte sequence (for `Vec<u8>`, [`Bytes`],
///   `serde_bytes`). An unknown extension type is an error, as in Kombu.
/// - `application/x-msgpack`: straight into `T`.
/// - `application/x-yaml`: read as [`decode_value`] reads it (plain scalars
///   resolved as PyYAML does), then `T`.
/// - a custom content type: the codec's [`Value`], then `T`.
/// - any other type (`text/plain`, `application/data`, none): the body's
///   text (for `String`), or its bytes (for `Vec<u8>`, [`Bytes`]); for a
///   [`Value`], text unless the content encoding is `binary`.
///
/// An empty body is not given to a decoder (Kombu returns it as it is):
/// it reads as an empty string or byte sequence, as `None` for an `Option`
/// and as `()`; other types fail with a [`Decode`](ErrorKind::Decode)
/// error. For a dynamic value, [`decode_value`] keeps the extension types.
///
/// [`Message::decode`](crate::Message::decode) calls this with the
/// message's content type and encoding; call it directly for bodies that
/// came another way.
///
/// # Examples
///
/// ```
/// use kelp::serialization::decode;
///
/// let numbers: Vec<u32> = decode(Some("application/json"), Some("utf-8"), b"[1, 2, 3]")?;
/// assert_eq!(numbers, [1, 2, 3]);
///
/// // Without a decoder for the type, text stays text.
/// let note: String = decode(Some("text/plain"), Some("utf-8"), b"hi there")?;
/// assert_eq!(note, "hi there");
/// # Ok::<(), kelp::Error>(())
/// ```
pub fn decode<T: DeserializeOwned>(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<T> {
    let ct = effective_type(content_type);
    if body.is_empty() {
        return T::deserialize(RawBody {
            bytes: body,
            text: None,
            empty: true,
        });
    }
    match decoder_for(ct) {
        Decoder::Builtin(Builtin::Json) => {
            if !json::may_have_extensions(body) {
                return serde_json::from_slice(body).map_err(|e| decode_error(ct, e));
            }
            let json::JsonValue(mut value) =
                serde_json::from_slice(body).map_err(|e| decode_error(ct, e))?;
            json::plainify(&mut value);
            T::deserialize(value)
        }
        #[cfg(feature = "msgpack")]
        Decoder::Builtin(Builtin::Msgpack) => msgpack::decode(body),
        // Through the dynamic value, so that plain scalars are read as
        // PyYAML reads them (`y` is a string, not a boolean) here too.
        #[cfg(feature = "yaml")]
        Decoder::Builtin(Builtin::Yaml) => {
            T::deserialize(yaml::decode_value(body).map_err(|e| decode_error(ct, e))?)
        }
        #[cfg(not(feature = "msgpack"))]
        Decoder::Builtin(Builtin::Msgpack) => Err(Builtin::Msgpack.compiled_out()),
        #[cfg(not(feature = "yaml"))]
        Decoder::Builtin(Builtin::Yaml) => Err(Builtin::Yaml.compiled_out()),
        Decoder::Builtin(Builtin::Raw | Builtin::Text) | Decoder::None => {
            let text = Charset::parse(content_encoding)?.text(body)?;
            T::deserialize(RawBody {
                bytes: body,
                text,
                empty: false,
            })
        }
        Decoder::Custom(codec) => {
            let mut value = codec.decode(body)?;
            json::plainify(&mut value);
            T::deserialize(value)
        }
    }
}

/// Deserialize a body into a dynamic [`Value`] by its content type.
///
/// JSON extension objects become [`Value::DateTime`], [`Value::Date`],
/// [`Value::Time`], [`Value::Decimal`], [`Value::Uuid`] (32 lowercase hex
/// digits) and [`Value::Bytes`]; an unknown `__type__` is a
/// [`Decode`](ErrorKind::Decode) error. YAML `!!binary` becomes
/// [`Value::Bytes`]; YAML timestamps stay strings. A body without a decoder
/// becomes [`Value::String`] (an error if it is not valid in its encoding)
/// or, with a `binary` encoding, [`Value::Bytes`]. An empty body is
/// returned as empty [`Value::Bytes`], whatever its type, as Kombu returns
/// it as it is.
///
/// # Examples
///
/// ```
/// use kelp::Value;
/// use kelp::serialization::decode_value;
///
/// let body = br#"{"id": {"__type__": "uuid", "__value__": {"hex": "5b5e0d9e3c4a4f5e8a36c0c2a1d4a6f1"}}}"#;
/// let value = decode_value(Some("application/json"), None, body)?;
/// assert_eq!(value.get("id"), Some(&Value::Uuid("5b5e0d9e3c4a4f5e8a36c0c2a1d4a6f1".into())));
/// # Ok::<(), kelp::Error>(())
/// ```
pub fn decode_value(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<Value> {
    let ct = effective_type(content_type);
    if body.is_empty() {
        return Ok(Value::Bytes(Bytes::new()));
    }
    match decoder_for(ct) {
        Decoder::Builtin(Builtin::Json) => serde_json::from_slice::<json::JsonValue>(body)
            .map(|v| v.0)
            .map_err(|e| decode_error(ct, e)),
        #[cfg(feature = "msgpack")]
        Decoder::Builtin(Builtin::Msgpack) => msgpack::decode_value(body),
        #[cfg(feature = "yaml")]
        Decoder::Builtin(Builtin::Yaml) => yaml::decode_value(body).map_err(|e| decode_error(ct, e)),
        #[cfg(not(feature = "msgpack"))]
        Decoder::Builtin(Builtin::Msgpack) => Err(Builtin::Msgpack.compiled_out()),
        #[cfg(not(feature = "yaml"))]
        Decoder::Builtin(Builtin::Yaml) => Err(Builtin::Yaml.compiled_out()),
        Decoder::Builtin(Builtin::Raw | Builtin::Text) | Decoder::None => {
            body::undecoded_value(body, Charset::parse(content_encoding)?)
        }
        Decoder::Custom(codec) => codec.decode(body),
    }
}

// ---------------------------------------------------------------------------
// Registry of custom serializers.

static REGISTRY: RwLock<Vec<Arc<Custom>>> = RwLock::new(Vec::new());
/// Number of registered serializers, so that unknown content types skip the
/// lock entirely when there are none.
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

fn find_custom(pred: impl Fn(&Custom) -> bool) -> Option<Arc<Custom>> {
    if REGISTERED.load(Ordering::Acquire) == 0 {
        return None;
    }
    let reg = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
    reg.iter().find(|c| pred(c)).cloned()
}

fn known_names() -> Vec<String> {
    let mut names: Vec<String> = Builtin::ALL.iter().map(|b| b.name().to_owned()).collect();
    if REGISTERED.load(Ordering::Acquire) > 0 {
        let reg = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
        names.extend(reg.iter().map(|c| c.name.clone()));
    }
    names
}

/// The name Kombu would show for a content type in messages.
fn name_for_type(content_type: &str) -> Option<String> {
    Builtin::by_content_type(content_type)
        .map(|b| b.name().to_owned())
        .or_else(|| {
            find_custom(|c| c.content_type.eq_ignore_ascii_case(content_type))
                .map(|c| c.name.clone())
        })
}

/// Register a custom serializer.
///
/// The name may not be a built-in name nor contain `/` (accept lists tell
/// names from content types by it), and the content type may not be a
/// built-in one: both are [`Config`](ErrorKind::Config) errors, as is a
/// content type already registered under another name. Registering a name
/// again replaces it. [`Serializer::from_name`], [`decode`], [`decode_value`]
/// and [`Accept`] see the serializer from then on.
///
/// Registration is process-wide: do it once at startup.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use kelp::serialization::{self, Codec};
/// use kelp::{Serializer, Value};
///
/// struct Lines;
///
/// impl Codec for Lines {
///     fn encode(&self, value: &Value) -> kelp::Result<Bytes> {
///         let lines: Vec<String> = value.clone().deserialize_into()?;
///         Ok(Bytes::from(lines.join("\n")))
///     }
///     fn decode(&self, body: &[u8]) -> kelp::Result<Value> {
///         let text = String::from_utf8_lossy(body);
///         Ok(Value::Array(text.lines().map(Value::from).collect()))
///     }
/// }
///
/// serialization::register("lines-doc", "text/x-lines-doc", "utf-8", Arc::new(Lines))?;
/// let lines = Serializer::from_name("lines-doc")?;
/// let body = lines.encode(&["GET /", "GET /about"])?;
/// assert_eq!(body, "GET /\nGET /about");
/// let back: Vec<String> = serialization::decode(Some("text/x-lines-doc"), None, &body)?;
/// assert_eq!(back, ["GET /", "GET /about"]);
///
/// // Built-in names are taken.
/// assert!(serialization::register("json", "text/x-other", "utf-8", Arc::new(Lines)).is_err());
/// # Ok::<(), kelp::Error>(())
/// ```
pub fn register(
    name: &str,
    content_type: &str,
    content_encoding: &str,
    codec: Arc<dyn Codec>,
) -> Result<()> {
    let name = name.trim();
    let ct = content_type.trim();
    if name.is_empty() || name.contains('/') {
        return Err(Error::config(format!(
            "invalid serializer name {name:?}: it must be non-empty and contain no '/'"
        )));
    }
    if !ct.contains('/') || base_type(ct) != ct {
        return Err(Error::config(format!(
            "invalid content type {content_type:?} for serializer {name:?}: expected a media type \
             such as application/x-myformat, without parameters"
        )));
    }
    if let Some(b) = Builtin::by_name(name) {
        return Err(Error::config(format!(
            "cannot register serializer {name:?}: {} is a built-in serializer",
            b.name()
        )));
    }
    if let Some(b) = Builtin::by_content_type(ct) {
        return Err(Error::config(format!(
            "cannot register serializer {name:?}: content type {ct} belongs to the built-in \
             serializer {}",
            b.name()
        )));
    }
    let mut reg = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(other) = reg
        .iter()
        .find(|c| c.name != name && c.content_type.eq_ignore_ascii_case(ct))
    {
        return Err(Error::config(format!(
            "cannot register serializer {name:?}: content type {ct} is already registered by {:?}",
            other.name
        )));
    }
    reg.retain(|c| c.name != name);
    reg.push(Arc::new(Custom {
        name: name.to_owned(),
        content_type: ct.to_owned(),
        content_encoding: content_encoding.trim().to_owned(),
        codec,
    }));
    REGISTERED.store(reg.len(), Ordering::Release);
    Ok(())
}

/// Remove a custom serializer.
///
/// Values already resolved with [`Serializer::from_name`] keep working.
/// Unregistering a built-in or an unknown name is a
/// [`Config`](ErrorKind::Config) error.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use kelp::serialization::{self, Codec};
/// use kelp::{Serializer, Value};
///
/// struct Silent;
/// impl Codec for Silent {
///     fn encode(&self, _: &Value) -> kelp::Result<Bytes> { Ok(Bytes::new()) }
///     fn decode(&self, _: &[u8]) -> kelp::Result<Value> { Ok(Value::Null) }
/// }
///
/// serialization::register("silent-doc", "application/x-silent-doc", "binary", Arc::new(Silent))?;
/// let kept = Serializer::from_name("silent-doc")?;
/// serialization::unregister("silent-doc")?;
/// assert!(Serializer::from_name("silent-doc").is_err());
/// assert!(kept.encode(&1).is_ok()); // resolved before: still works
/// assert!(serialization::unregister("json").unwrap_err().is_config());
/// # Ok::<(), kelp::Error>(())
/// ```
pub fn unregister(name: &str) -> Result<()> {
    let name = name.trim();
    if Builtin::by_name(name).is_some() {
        return Err(Error::config(format!(
            "cannot unregister the built-in serializer {name:?}"
        )));
    }
    let mut reg = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    let before = reg.len();
    reg.retain(|c| c.name != name);
    if reg.len() == before {
        return Err(Error::config(format!(
            "no custom serializer named {name:?} is registered"
        )));
    }
    REGISTERED.store(reg.len(), Ordering::Release);
    Ok(())
}

// ---------------------------------------------------------------------------
// Accept lists.

/// The content types a consumer accepts.
///
/// `application/data` and `application/text` are always accepted (Kombu's
/// `TRUSTED_CONTENT`); so is a message without a content type, which Kombu
/// treats as `application/data`. Content types are compared without their
/// parameters and regardless of ASCII case.
///
/// The default, [`Accept::all`], accepts every built-in serializer
/// (json, msgpack, yaml, raw, text) and every registered custom one. Kombu
/// disables yaml and msgpack (and pickle) by default because Python's
/// decoders for them could be made to build arbitrary objects; kelp's
/// decoders only ever produce plain data and run no code, so kelp accepts
/// them. Use [`Accept::new`] to restrict the list.
///
/// # Examples
///
/// ```
/// use kelp::Accept;
///
/// let accept = Accept::new(["json", "application/x-msgpack"])?;
/// assert!(accept.allows(Some("application/json; charset=utf-8")));
/// assert!(accept.allows(Some("application/data"))); // always trusted
/// assert!(!accept.allows(Some("application/x-yaml")));
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Accept {
    /// `None` accepts every known content type.
    types: Option<Arc<[Box<str>]>>,
}

impl Accept {
    /// An accept list of serializer names or content types.
    ///
    /// An item with a `/` is a content type; otherwise it is a serializer
    /// name resolved to its content type: a built-in, a registered custom
    /// serializer, or `pickle` (`application/x-python-serialize`, so that
    /// accept lists copied from Python configurations load, although kelp
    /// cannot deserialize pickle and returns such bodies as bytes). Any
    /// other name is a [`Config`](ErrorKind::Config) error.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Accept;
    ///
    /// // The accept list of a Celery configuration, as is.
    /// let accept = Accept::new(["json", "pickle"])?;
    /// assert!(accept.allows(Some("application/x-python-serialize")));
    /// assert!(Accept::new(["jsn"]).unwrap_err().is_config()); // a typo fails early
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn new<I, S>(names: I) -> Result<Accept>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut types: Vec<Box<str>> = Vec::new();
        for item in names {
            let item = item.as_ref().trim();
            let ct: String = if item.contains('/') {
                base_type(item).to_ascii_lowercase()
            } else if let Some(b) = Builtin::by_name(item) {
                b.content_type().to_owned()
            } else if item.eq_ignore_ascii_case("pickle") {
                "application/x-python-serialize".to_owned()
            } else if let Some(c) = find_custom(|c| c.name == item) {
                c.content_type.to_ascii_lowercase()
            } else {
                return Err(Error::config(format!(
                    "unknown serializer {item:?} in the accept list; known: {}, pickle, or a \
                     content type",
                    known_names().join(", ")
                )));
            };
            if !types.iter().any(|t| **t == *ct) {
                types.push(ct.into_boxed_str());
            }
        }
        Ok(Accept {
            types: Some(types.into()),
        })
    }

    /// Accept every registered serializer.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Accept;
    ///
    /// let all = Accept::all();
    /// assert!(all.allows(Some("application/x-yaml")));
    /// assert!(!all.allows(Some("application/x-unknown")));
    /// ```
    pub fn all() -> Accept {
        Accept { types: None }
    }

    /// True if a message of this content type may be decoded.
    ///
    /// # Examples
    ///
    /// ```
    /// let accept = kelp::Accept::new(["json"])?;
    /// assert!(accept.allows(Some("APPLICATION/JSON"))); // case does not matter
    /// assert!(accept.allows(None)); // no content type: treated as application/data
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn allows(&self, content_type: Option<&str>) -> bool {
        let ct = effective_type(content_type);
        if TRUSTED.iter().any(|t| t.eq_ignore_ascii_case(ct)) {
            return true;
        }
        match &self.types {
            Some(types) => types.iter().any(|t| t.eq_ignore_ascii_case(ct)),
            None => {
                Builtin::by_content_type(ct).is_some()
                    || find_custom(|c| c.content_type.eq_ignore_ascii_case(ct)).is_some()
            }
        }
    }

    /// `Ok` if allowed, else a `ContentDisallowed` error.
    ///
    /// The message follows Kombu's: `Refusing to deserialize untrusted
    /// content of type yaml (application/x-yaml)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let accept = kelp::Accept::new(["json"])?;
    /// assert!(accept.check(Some("application/json")).is_ok());
    /// let refused = accept.check(Some("application/x-yaml")).unwrap_err();
    /// assert!(refused.is_content_disallowed());
    /// assert!(refused.message().contains("yaml"));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn check(&self, content_type: Option<&str>) -> Result<()> {
        if self.allows(content_type) {
            return Ok(());
        }
        let ct = effective_type(content_type);
        let what = match name_for_type(ct) {
            Some(name) => format!("{name} ({ct})"),
            None => ct.to_owned(),
        };
        Err(Error::new(
            ErrorKind::ContentDisallowed,
            format!("Refusing to deserialize untrusted content of type {what}"),
        ))
    }

    /// The accepted content types, or `None` for [`Accept::all`]. The
    /// always-trusted types are not listed.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Accept;
    ///
    /// let accept = Accept::new(["json", "msgpack"])?;
    /// let types: Vec<&str> = accept.content_types().expect("a list").collect();
    /// assert_eq!(types, ["application/json", "application/x-msgpack"]);
    /// assert!(Accept::all().content_types().is_none());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn content_types(&self) -> Option<impl Iterator<Item = &str>> {
        self.types.as_ref().map(|t| t.iter().map(|s| &**s))
    }
}

impl Default for Accept {
    fn default() -> Self {
        Accept::all()
    }
}

#[cfg(test)]
mod availability {
    use super::*;

    #[test]
    fn a_serializer_left_out_is_refused_by_name() {
        for (name, compiled_in) in [("msgpack", cfg!(feature = "msgpack")), ("yaml", cfg!(feature = "yaml"))] {
            let serializer = Serializer::from_name(name).unwrap();
            let encoded = serializer.encode(&[1, 2]);
            let decoded = decode_value(Some(serializer.content_type()), None, b"[1, 2]");
            if compiled_in {
                assert!(encoded.is_ok(), "{name}");
            } else {
                for err in [encoded.unwrap_err(), decoded.unwrap_err()] {
                    assert_eq!(err.kind(), ErrorKind::Unsupported, "{name}: {err}");
                    assert!(err.message().contains(&format!("`{name}` feature")), "{err}");
                }
            }
        }
    }
}
