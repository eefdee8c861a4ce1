//! Bodies that are not a serialization format: the `raw` and `text`
//! serializers, content types without a decoder, and empty bodies.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Visitor};
use serde::ser::{self, Impossible, Serialize};

use crate::content::value::Value;

use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// Encoding: take the bytes or the text out of a `T: Serialize`.

/// What the capture accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capture {
    /// Bytes (`serialize_bytes`, or a sequence of `u8` such as `Vec<u8>`) or a string.
    Raw,
    /// A string (or a char).
    Text,
}

impl Capture {
    fn name(self) -> &'static str {
        match self {
            Capture::Raw => "raw",
            Capture::Text => "text",
        }
    }

    fn wants(self) -> &'static str {
        match self {
            Capture::Raw => "bytes or a string",
            Capture::Text => "a string",
        }
    }
}

/// Serialize `value` with the raw or text serializer.
pub(crate) fn capture<T: Serialize + ?Sized>(value: &T, mode: Capture) -> Result<Bytes> {
    value.serialize(Capturer(mode))
}

struct Capturer(Capture);

impl Capturer {
    fn reject(&self, found: &str) -> Error {
        Error::encode(format!(
            "the {} serializer needs {}, found {found}",
            self.0.name(),
            self.0.wants()
        ))
    }
}

macro_rules! reject_scalars {
    ($($method:ident($ty:ty) => $what:literal),* $(,)?) => {$(
        fn $method(self, _v: $ty) -> Result<Bytes> {
            Err(self.reject($what))
        }
    )*};
}

impl ser::Serializer for Capturer {
    type Ok = Bytes;
    type Error = Error;
    type SerializeSeq = ByteSeq;
    type SerializeTuple = Impossible<Bytes, Error>;
    type SerializeTupleStruct = Impossible<Bytes, Error>;
    type SerializeTupleVariant = Impossible<Bytes, Error>;
    type SerializeMap = Impossible<Bytes, Error>;
    type SerializeStruct = Impossible<Bytes, Error>;
    type SerializeStructVariant = Impossible<Bytes, Error>;

    fn serialize_str(self, v: &str) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(v.as_bytes()))
    }
    fn serialize_char(self, v: char) -> Result<Bytes> {
        let mut buf = [0u8; 4];
        Ok(Bytes::copy_from_slice(v.encode_utf8(&mut buf).as_bytes()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Bytes> {
        match self.0 {
            Capture::Raw => Ok(Bytes::copy_from_slice(v)),
            Capture::Text => match std::str::from_utf8(v) {
                Ok(_) => Ok(Bytes::copy_from_slice(v)),
                Err(_) => Err(self.reject("bytes that are not UTF-8")),
            },
        }
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Bytes> {
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ByteSeq> {
        match self.0 {
            Capture::Raw => Ok(ByteSeq(Vec::with_capacity(len.unwrap_or(0).min(1 << 20)))),
            Capture::Text => Err(self.reject("a sequence")),
        }
    }

    reject_scalars! {
        serialize_bool(bool) => "a boolean",
        serialize_i8(i8) => "an integer",
        serialize_i16(i16) => "an integer",
        serialize_i32(i32) => "an integer",
        serialize_i64(i64) => "an integer",
        serialize_i128(i128) => "an integer",
        serialize_u8(u8) => "an integer",
        serialize_u16(u16) => "an integer",
        serialize_u32(u32) => "an integer",
        serialize_u64(u64) => "an integer",
        serialize_u128(u128) => "an integer",
        serialize_f32(f32) => "a float",
        serialize_f64(f64) => "a float",
        serialize_unit_struct(&'static str) => "a unit struct",
    }

    fn serialize_none(self) -> Result<Bytes> {
        Err(self.reject("None"))
    }
    fn serialize_unit(self) -> Result<Bytes> {
        Err(self.reject("()"))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<Bytes> {
        Err(self.reject("an enum"))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Bytes> {
        Err(self.reject("an enum"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(self.reject("a tuple"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(self.reject("a tuple struct"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(self.reject("an enum"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(self.reject("a map"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(self.reject("a struct"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(self.reject("an enum"))
    }
}

/// Collects a sequence of `u8` (how `Vec<u8>` and `[u8]` serialize).
pub(crate) struct ByteSeq(Vec<u8>);

impl ser::SerializeSeq for ByteSeq {
    type Ok = Bytes;
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.0.push(value.serialize(OneByte)?);
        Ok(())
    }
    fn end(self) -> Result<Bytes> {
        Ok(Bytes::from(self.0))
    }
}

/// Accepts a `u8` and nothing else.
struct OneByte;

fn not_a_byte() -> Error {
    Error::encode("the raw serializer needs bytes or a string, found a sequence of non-u8 items")
}

macro_rules! not_a_byte {
    ($($method:ident($($ty:ty),*)),* $(,)?) => {$(
        fn $method(self, $(_: $ty),*) -> Result<u8> {
            Err(not_a_byte())
        }
    )*};
}

impl ser::Serializer for OneByte {
    type Ok = u8;
    type Error = Error;
    type SerializeSeq = Impossible<u8, Error>;
    type SerializeTuple = Impossible<u8, Error>;
    type SerializeTupleStruct = Impossible<u8, Error>;
    type SerializeTupleVariant = Impossible<u8, Error>;
    type SerializeMap = Impossible<u8, Error>;
    type SerializeStruct = Impossible<u8, Error>;
    type SerializeStructVariant = Impossible<u8, Error>;

    fn serialize_u8(self, v: u8) -> Result<u8> {
        Ok(v)
    }

    not_a_byte! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_f32(f32), serialize_f64(f64), serialize_char(char), serialize_str(&str),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u8> {
        Err(not_a_byte())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Result<u8> {
        Err(not_a_byte())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8> {
        Err(not_a_byte())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(not_a_byte())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(not_a_byte())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(not_a_byte())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(not_a_byte())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(not_a_byte())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(not_a_byte())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(not_a_byte())
    }
}

// ---------------------------------------------------------------------------
// Decoding: bodies without a decoder.

/// A character set named in `content_encoding`, for bodies that have no
/// decoder (Kombu then decodes the bytes with Python's `codecs.decode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Charset {
    /// `binary` or `ascii-8bit`: the body stays bytes.
    Binary,
    /// `utf-8` (the default when the header is missing).
    Utf8,
    /// `ascii` / `us-ascii`.
    Ascii,
    /// `latin-1` / `iso-8859-1`: one char per byte.
    Latin1,
}

impl Charset {
    /// Parse a `content_encoding` header; `None` is `utf-8`, as in Kombu.
    pub(crate) fn parse(encoding: Option<&str>) -> Result<Charset> {
        let Some(raw) = encoding else {
            return Ok(Charset::Utf8);
        };
        let e = raw.trim();
        let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(e));
        if e.is_empty() || is(&["utf-8", "utf8", "utf_8", "u8", "utf"]) {
            Ok(Charset::Utf8)
        } else if is(&["binary", "ascii-8bit"]) {
            Ok(Charset::Binary)
        } else if is(&["ascii", "us-ascii", "us_ascii", "646"]) {
            Ok(Charset::Ascii)
        } else if is(&[
            "latin-1",
            "latin1",
            "latin_1",
            "iso-8859-1",
            "iso8859-1",
            "iso_8859_1",
            "l1",
        ]) {
            Ok(Charset::Latin1)
        } else {
            Err(Error::decode(format!(
                "unsupported content encoding {raw:?}; kelp decodes utf-8, ascii, latin-1 and binary"
            )))
        }
    }

    /// The text of `body` in this charset, or `None` for binary.
    pub(crate) fn text(self, body: &[u8]) -> Result<Option<Cow<'_, str>>> {
        match self {
            Charset::Binary => Ok(None),
            Charset::Utf8 => std::str::from_utf8(body)
                .map(|s| Some(Cow::Borrowed(s)))
                .map_err(|e| Error::decode("the body is not valid utf-8").with_source(e)),
            Charset::Ascii => {
                if body.is_ascii() {
                    // ASCII is valid UTF-8.
                    Ok(std::str::from_utf8(body).ok().map(Cow::Borrowed))
                } else {
                    Err(Error::decode("the body is not valid ascii"))
                }
            }
            Charset::Latin1 => Ok(Some(Cow::Owned(
                body.iter().map(|&b| char::from(b)).collect(),
            ))),
        }
    }
}

/// The dynamic value of a body without a decoder: text, or bytes for a
/// binary charset.
pub(crate) fn undecoded_value(body: &[u8], charset: Charset) -> Result<Value> {
    Ok(match charset.text(body)? {
        Some(text) => Value::String(text.into_owned()),
        None => Value::Bytes(Bytes::copy_from_slice(body)),
    })
}

/// A deserializer over a body that is not in a serialization format.
///
/// It answers what a Rust type asks for: text for `String`, the bytes for
/// `Vec<u8>` / `Bytes` / `serde_bytes`, and for `deserialize_any` (e.g.
/// [`Value`]) text when the charset is textual, bytes otherwise.
pub(crate) struct RawBody<'a> {
    pub(crate) bytes: &'a [u8],
    /// The decoded text, when the charset is textual.
    pub(crate) text: Option<Cow<'a, str>>,
    /// The body was empty in a format that has a decoder: `Option` reads
    /// it as `None` and `()` accepts it.
    pub(crate) empty: bool,
}

impl<'de> de::Deserializer<'de> for RawBody<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.text {
            Some(Cow::Borrowed(s)) => visitor.visit_str(s),
            Some(Cow::Owned(s)) => visitor.visit_string(s),
            None => visitor.visit_bytes(self.bytes),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.text {
            Some(Cow::Borrowed(s)) => visitor.visit_str(s),
            Some(Cow::Owned(s)) => visitor.visit_string(s),
            // A String visitor takes UTF-8 bytes and rejects others.
            None => visitor.visit_bytes(self.bytes),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.text {
            Some(Cow::Owned(s)) => visitor.visit_byte_buf(s.into_bytes()),
            _ => visitor.visit_bytes(self.bytes),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // `Vec<u8>` asks for a sequence.
        let bytes: Cow<'_, [u8]> = match &self.text {
            Some(Cow::Owned(s)) => Cow::Owned(s.as_bytes().to_vec()),
            _ => Cow::Borrowed(self.bytes),
        };
        visitor.visit_seq(de::value::SeqDeserializer::<_, Error>::new(
            bytes.iter().copied(),
        ))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.empty {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.empty || self.bytes.is_empty() {
            visitor.visit_unit()
        } else {
            self.deserialize_any(visitor)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        unit_struct tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl fmt::Debug for RawBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawBody({} bytes)", self.bytes.len())
    }
}
