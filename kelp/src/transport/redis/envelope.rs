//! Kombu's Redis message envelope: the JSON document its Redis transport
//! LPUSHes, so Python and Rust services read each other's messages.
//!
//! ```json
//! {"body": "<base64>", "content-encoding": "utf-8",
//!  "content-type": "application/json", "headers": {},
//!  "properties": {"delivery_mode": 2, "delivery_info":
//!    {"exchange": "x", "routing_key": "k"}, "priority": 0,
//!    "body_encoding": "base64", "delivery_tag": "<uuid4>"}}
//! ```

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::content::message::{Content, Properties};
use crate::codec::serialization::json::LENIENT_B64;
use crate::content::text::SharedStr;
use crate::content::value::FieldTable;
use crate::error::{Error, Result};

/// A decoded envelope.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) content: Content,
    pub(crate) exchange: SharedStr,
    pub(crate) routing_key: SharedStr,
    pub(crate) redelivered: bool,
    /// Kombu's delivery tag (a UUID): the key of the unacked hash.
    pub(crate) tag: String,
    /// The raw envelope is UTF-8 JSON text, so it can go into Kombu's
    /// unacked record as it stands (see [`write_unacked_record`]).
    pub(crate) json_text: bool,
}

/// An envelope without its body, which [`encode`] writes itself.
#[derive(Serialize)]
struct OutEnvelope<'a> {
    #[serde(rename = "content-encoding")]
    content_encoding: Option<&'a str>,
    #[serde(rename = "content-type")]
    content_type: Option<&'a str>,
    headers: &'a FieldTable,
    properties: OutProperties<'a>,
}

#[derive(Serialize)]
struct OutProperties<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_mode: Option<u8>,
    delivery_info: DeliveryInfoWire<'a>,
    priority: u8,
    body_encoding: &'static str,
    delivery_tag: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<&'a str>,
}

#[derive(Serialize, Deserialize, Default)]
struct DeliveryInfoWire<'a> {
    #[serde(default, borrow)]
    exchange: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    routing_key: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redelivered: Option<bool>,
}

#[derive(Deserialize)]
struct InEnvelope<'a> {
    #[serde(default, borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "content-encoding", default, borrow)]
    content_encoding: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "content-type", default, borrow)]
    content_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    headers: Option<FieldTable>,
    #[serde(borrow)]
    properties: InProperties<'a>,
}

#[derive(Deserialize)]
struct InProperties<'a> {
    #[serde(default)]
    delivery_mode: Option<Number>,
    #[serde(default, borrow)]
    delivery_info: Option<DeliveryInfoWire<'a>>,
    #[serde(default)]
    priority: Option<Number>,
    #[serde(default, borrow)]
    body_encoding: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    delivery_tag: Option<TagWire>,
    #[serde(default)]
    correlation_id: Option<TextWire>,
    #[serde(default)]
    reply_to: Option<TextWire>,
    #[serde(default)]
    expiration: Option<TextWire>,
    #[serde(default)]
    message_id: Option<TextWire>,
    #[serde(default)]
    timestamp: Option<Number>,
    #[serde(rename = "type", default)]
    kind: Option<TextWire>,
    #[serde(default)]
    user_id: Option<TextWire>,
    #[serde(default)]
    app_id: Option<TextWire>,
    #[serde(default)]
    cluster_id: Option<TextWire>,
}

/// A JSON number Python may have written as int or float.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
    Other(serde::de::IgnoredAny),
}

impl Number {
    fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(f) if f.is_finite() => Some(f as i64),
            _ => None,
        }
    }
}

/// A text property; Python code sometimes puts a number there.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextWire {
    Text(String),
    Int(i64),
    Float(f64),
    Other(serde::de::IgnoredAny),
}

impl TextWire {
    fn into_shared(self) -> Option<SharedStr> {
        match self {
            TextWire::Text(s) => Some(SharedStr::from(s)),
            TextWire::Int(i) => Some(SharedStr::from(i.to_string())),
            TextWire::Float(f) => Some(SharedStr::from(f.to_string())),
            TextWire::Other(_) => None,
        }
    }
}

/// Kombu writes UUID text; other producers may write a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum TagWire {
    Text(String),
    Int(u64),
}

/// The envelope of `content` as published to `exchange` with `routing_key`.
pub(crate) fn encode(content: &Content, exchange: &str, routing_key: &str, tag: &str) -> Vec<u8> {
    encode_marked(content, exchange, routing_key, tag, false)
}

fn encode_marked(content: &Content, exchange: &str, routing_key: &str, tag: &str, redelivered: bool) -> Vec<u8> {
    let p = &content.properties;
    let marked_headers;
    let headers = if redelivered {
        let mut h = p.headers.clone();
        h.insert("redelivered".into(), crate::content::value::Value::Bool(true));
        marked_headers = h;
        &marked_headers
    } else {
        &p.headers
    };
    let envelope = OutEnvelope {
        content_encoding: p.content_encoding.as_deref(),
        content_type: p.content_type.as_deref(),
        headers,
        properties: OutProperties {
            delivery_mode: p.delivery_mode,
            delivery_info: DeliveryInfoWire {
                exchange: Some(exchange.into()),
                routing_key: Some(routing_key.into()),
                redelivered: redelivered.then_some(true),
            },
            priority: p.priority.unwrap_or(0),
            body_encoding: "base64",
            delivery_tag: tag,
            correlation_id: p.correlation_id.as_deref(),
            reply_to: p.reply_to.as_deref(),
            expiration: p.expiration.as_deref(),
            message_id: p.message_id.as_deref(),
            timestamp: p.timestamp,
            kind: p.kind.as_deref(),
            user_id: p.user_id.as_deref(),
            app_id: p.app_id.as_deref(),
            cluster_id: p.cluster_id.as_deref(),
        },
    };
    // The body first, written directly: base64 needs no escaping, and
    // serde_json's escaping of a large string byte by byte cost more than
    // encoding it.
    let mut out = Vec::with_capacity(content.body.len() / 3 * 4 + 400);
    out.extend_from_slice(b"{\"body\":\"");
    base64_simd::STANDARD.encode_append(&content.body, &mut out);
    out.extend_from_slice(b"\",");
    let rest = out.len();
    // Serializing plain structs and maps of text into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &envelope);
    // The rest opened an object of its own: it continues ours instead.
    out.remove(rest);
    out
}

/// Decode an envelope read from Redis; anything that is not one is a
/// decode error (the caller decides what happens to the raw bytes).
pub(crate) fn decode(raw: &[u8]) -> Result<Envelope> {
    if let Some((body, rest)) = split_leading_body(raw) {
        // The rest of the envelope as an object of its own: `{` + what
        // follows the body's comma (a few hundred bytes, copied into a
        // buffer each thread keeps).
        thread_local! {
            static OBJECT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        return OBJECT.with(|object| {
            let mut object = object.borrow_mut();
            object.clear();
            object.push(b'{');
            object.extend_from_slice(rest);
            let decoded = match serde_json::from_slice::<InEnvelope<'_>>(&object) {
                Err(e) => Err(not_an_envelope(e)),
                Ok(wire) if wire.body.is_some() => Err(Error::decode("not a Kombu Redis envelope: duplicate field `body`")),
                // The prefix is ASCII and the body is checked as it is decoded.
                Ok(wire) => build(Some(BodyText::Unchecked(body)), wire, is_json_text(rest)),
            };
            // Not kept: the rest of one odd envelope with huge headers.
            if object.capacity() > 64 * 1024 {
                *object = Vec::new();
            }
            decoded
        });
    }
    decode_in_full(raw)
}

/// [`decode`] without the body shortcut: serde_json reads every byte.
pub(crate) fn decode_in_full(raw: &[u8]) -> Result<Envelope> {
    let mut wire: InEnvelope<'_> = serde_json::from_slice(raw).map_err(not_an_envelope)?;
    let body = wire.body.take().map(BodyText::Checked);
    build(body, wire, is_json_text(raw))
}

fn not_an_envelope(e: serde_json::Error) -> Error {
    Error::decode(format!("not a Kombu Redis envelope: {e}"))
}

/// An envelope's body text.
enum BodyText<'a> {
    /// Read by serde_json, which checked it is a JSON string.
    Checked(std::borrow::Cow<'a, str>),
    /// Found between its quotes without escapes, not yet checked.
    Unchecked(&'a [u8]),
}

impl BodyText<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            BodyText::Checked(text) => text.as_bytes(),
            BodyText::Unchecked(text) => text,
        }
    }
}

/// `{"body": "<text>", <rest>` (Kombu's and kelp's order, with or without
/// the space): the body text, found with one SIMD search instead of
/// serde_json's byte-by-byte string scan (the largest single cost of
/// consuming a 4 KiB message), and the rest after the comma. `None` for
/// anything else, escapes in the body included: the full parse reads it.
fn split_leading_body(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let after = raw
        .strip_prefix(b"{\"body\": \"")
        .or_else(|| raw.strip_prefix(b"{\"body\":\""))?;
    let end = memchr::memchr2(b'"', b'\\', after)?;
    if after[end] != b'"' {
        return None;
    }
    let tail = &after[end + 1..];
    let comma = tail.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    (tail[comma] == b',').then(|| (&after[..end], &tail[comma + 1..]))
}

/// The text of a body without base64 as bytes, if it is what a JSON string
/// without escapes may hold: UTF-8 and no control characters.
fn checked_text(text: &[u8]) -> Result<&str> {
    if text.iter().fold(false, |seen, &b| seen | (b < 0x20)) {
        return Err(Error::decode("not a Kombu Redis envelope: control character in the body"));
    }
    std::str::from_utf8(text).map_err(|e| Error::decode(format!("not a Kombu Redis envelope: body is not UTF-8: {e}")))
}

fn build(body: Option<BodyText<'_>>, wire: InEnvelope<'_>, json_text: bool) -> Result<Envelope> {
    let p = wire.properties;
    let body = match (body, p.body_encoding.as_deref()) {
        (None, _) => Bytes::new(),
        // The base64 decoder refuses every byte outside its alphabet, so an
        // unchecked body is checked by decoding it.
        (Some(text), Some("base64")) => Bytes::from(decode_base64(text.as_bytes())?),
        (Some(BodyText::Checked(text)), None | Some("")) => Bytes::from(text.into_owned().into_bytes()),
        (Some(BodyText::Unchecked(text)), None | Some("")) => Bytes::copy_from_slice(checked_text(text)?.as_bytes()),
        (Some(_), Some(other)) => {
            return Err(Error::decode(format!("unknown envelope body_encoding '{other}'")));
        }
    };
    let info = p.delivery_info.unwrap_or_default();
    let headers = wire.headers.unwrap_or_default();
    let redelivered = info.redelivered.unwrap_or(false)
        || matches!(headers.get("redelivered"), Some(crate::content::value::Value::Bool(true)));
    let small = |n: Option<Number>| {
        n.and_then(Number::as_i64).and_then(|v| u8::try_from(v.clamp(0, 255)).ok())
    };
    let properties = Properties {
        // Short texts live inline in a SharedStr: no allocation.
        content_type: wire.content_type.as_deref().map(SharedStr::from),
        content_encoding: wire.content_encoding.as_deref().map(SharedStr::from),
        headers,
        delivery_mode: small(p.delivery_mode),
        priority: small(p.priority),
        correlation_id: p.correlation_id.and_then(TextWire::into_shared),
        reply_to: p.reply_to.and_then(TextWire::into_shared),
        expiration: p.expiration.and_then(TextWire::into_shared),
        message_id: p.message_id.and_then(TextWire::into_shared),
        timestamp: p.timestamp.and_then(Number::as_i64).and_then(|t| u64::try_from(t).ok()),
        kind: p.kind.and_then(TextWire::into_shared),
        user_id: p.user_id.and_then(TextWire::into_shared),
        app_id: p.app_id.and_then(TextWire::into_shared),
        cluster_id: p.cluster_id.and_then(TextWire::into_shared),
    };
    Ok(Envelope {
        content: Content { properties, body },
        exchange: SharedStr::from(info.exchange.unwrap_or_default().as_ref()),
        routing_key: SharedStr::from(info.routing_key.unwrap_or_default().as_ref()),
        redelivered,
        tag: match p.delivery_tag {
            Some(TagWire::Text(t)) => t,
            Some(TagWire::Int(n)) => n.to_string(),
            None => String::new(),
        },
        json_text,
    })
}

/// A base64 body: canonical (what Kombu and kelp write) with SIMD, several
/// times faster than the scalar decoder on large bodies; anything else
/// (missing padding, stray trailing bits) the lenient way.
fn decode_base64(text: &[u8]) -> Result<Vec<u8>> {
    match base64_simd::STANDARD.decode_to_vec(text) {
        Ok(body) => Ok(body),
        Err(_) => LENIENT_B64.decode(text).map_err(|e| Error::decode(format!("envelope body is not base64: {e}"))),
    }
}

/// Whether `raw`, which decoded as an envelope, can go into Kombu's unacked
/// record as it stands (see [`write_unacked_record`]): JSON text must be
/// UTF-8, and [`decode`] does not check the UTF-8 of fields it skips.
pub(crate) fn is_json_text(raw: &[u8]) -> bool {
    raw.is_ascii() || std::str::from_utf8(raw).is_ok()
}

/// Kombu's unacked record `[payload, exchange, routing_key]` for a payload
/// that decoded as an envelope and [`is_json_text`]: the payload goes in as
/// it stands, no re-encoding (and no copy of a large one on the way).
pub(crate) fn write_unacked_record(out: &mut impl std::io::Write, payload: &[u8], exchange: &str, routing_key: &str) -> std::io::Result<()> {
    out.write_all(b"[")?;
    out.write_all(payload)?;
    out.write_all(b",")?;
    serde_json::to_writer(&mut *out, exchange)?;
    out.write_all(b",")?;
    serde_json::to_writer(&mut *out, routing_key)?;
    out.write_all(b"]")
}

/// The message priority Kombu files an envelope under (0..=9, default 0).
pub(crate) fn priority_of(content: &Content) -> u8 {
    content.properties.priority.unwrap_or(0).min(9)
}

/// `raw` with Kombu's redelivered marks set (`headers.redelivered` and
/// `properties.delivery_info.redelivered`), every other field kept as is.
pub(crate) fn mark_redelivered(raw: &[u8]) -> Result<Vec<u8>> {
    let mut doc: serde_json::Value = match serde_json::from_slice(raw) {
        Ok(doc) => doc,
        // Something serde_json's document model refuses in a field kelp
        // does not read (the envelope itself decoded): re-encode what was
        // read, with the marks, rather than lose the redelivered flag.
        Err(e) => {
            let envelope = decode(raw).map_err(|_| Error::decode(format!("not a Kombu Redis envelope: {e}")))?;
            return Ok(encode_marked(&envelope.content, &envelope.exchange, &envelope.routing_key, &envelope.tag, true));
        }
    };
    if let Some(headers) = doc.get_mut("headers").and_then(serde_json::Value::as_object_mut) {
        headers.insert("redelivered".into(), serde_json::Value::Bool(true));
    }
    if let Some(info) = doc
        .get_mut("properties")
        .and_then(|p| p.get_mut("delivery_info"))
        .and_then(serde_json::Value::as_object_mut)
    {
        info.insert("redelivered".into(), serde_json::Value::Bool(true));
    }
    serde_json::to_vec(&doc).map_err(|e| Error::decode(format!("cannot re-encode envelope: {e}")))
}

#[cfg(test)]
mod tests;
