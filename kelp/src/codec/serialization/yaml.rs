//! YAML in the dialect Python's `yaml.safe_dump` / `yaml.safe_load` speak
//! (YAML 1.1 flavoured), through serde-saphyr.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Spanned, Tagged};

use crate::content::value::{FieldTable, Value};

/// Parser options close to PyYAML's `safe_load`: YAML 1.1 octals (`017`),
/// duplicate keys where the last one wins, `.inf`/`.nan` as floats.
/// Snippets in errors are off: they would copy message content into logs.
/// `!!binary` scalars come through as their base64 text, decoded by
/// [`resolve`], so that non-UTF-8 bytes are not an error.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
        crop_radius: 0,
        ignore_binary_tag_for_string: true,
    }
}

pub(super) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> crate::error::Result<Bytes> {
    serde_saphyr::to_string(&value)
        .map(|s| Bytes::from(s.into_bytes()))
        .map_err(|e| crate::error::Error::encode("cannot serialize the body as yaml").with_source(e))
}

const BINARY_TAGS: [&str; 2] = ["tag:yaml.org,2002:binary", "!!binary"];

/// Read a YAML body into a [`Value`] the way PyYAML's `safe_load` sees it.
///
/// serde-saphyr resolves plain scalars by YAML 1.2 rules plus some YAML 1.1
/// ones; PyYAML follows YAML 1.1 only, and `safe_dump` leaves unquoted
/// exactly the strings that YAML 1.1 reads as strings. So every plain
/// scalar that serde-saphyr took for a boolean or a number is checked again
/// against PyYAML's rules on its source text: `y`, `0o17` or `1e5` are
/// strings to Python, and stay strings here. `!!binary` becomes bytes.
pub(crate) fn decode_value(body: &[u8]) -> Result<Value, serde_saphyr::Error> {
    let node: Node = serde_saphyr::from_slice_with_options(body, options())?;
    resolve(node, body).map_err(<serde_saphyr::Error as de::Error>::custom)
}

/// A parsed node with its explicit tag and its place in the source.
struct Node(Tagged<Spanned<Raw>>);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        Tagged::<Spanned<Raw>>::deserialize(deserializer).map(Node)
    }
}

enum Raw {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Value::Int)
            .or_else(|_| u64::try_from(v).map(Value::UInt))
            .map(Raw::Scalar)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        u64::try_from(v)
            .map(|u| Raw::Scalar(Value::from(u)))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::String(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Bytes(Bytes::copy_from_slice(v))))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Bytes(Bytes::from(v))))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

fn resolve(node: Node, src: &[u8]) -> Result<Value, String> {
    let Node(Tagged(spanned, tag)) = node;
    let span = spanned.defined.span();
    match spanned.value {
        Raw::Scalar(value) => {
            if tag.as_deref().is_some_and(|t| BINARY_TAGS.contains(&t)) {
                return match value {
                    Value::String(text) => super::json::base64_lenient(&text)
                        .map(|b| Value::Bytes(Bytes::from(b)))
                        .ok_or_else(|| "invalid base64 in a !!binary scalar".to_owned()),
                    other => Ok(other),
                };
            }
            let typed = matches!(
                value,
                Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_)
            );
            if tag.is_some() || !typed {
                return Ok(value);
            }
            let text = match (span.byte_offset(), span.byte_len()) {
                (Some(at), Some(len)) => usize::try_from(at)
                    .ok()
                    .zip(usize::try_from(len).ok())
                    .and_then(|(at, len)| src.get(at..at.checked_add(len)?))
                    .and_then(|raw| std::str::from_utf8(raw).ok()),
                _ => None,
            };
            let Some(text) = text else {
                return Ok(value);
            };
            let python_agrees = match value {
                Value::Bool(_) => is_py_bool(text),
                _ => is_py_int(text) || is_py_float(text),
            };
            Ok(if python_agrees {
                value
            } else {
                Value::String(text.to_owned())
            })
        }
        Raw::Seq(items) => items
            .into_iter()
            .map(|item| resolve(item, src))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Raw::Map(entries) => {
            let mut table = FieldTable::new();
            for (key, value) in entries {
                let key = key_text(resolve(key, src)?);
                table.insert(key, resolve(value, src)?);
            }
            Ok(Value::Map(table))
        }
    }
}

/// A mapping key as text: PyYAML allows ints, bools and null as keys; they
/// become the text JSON would give them.
fn key_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => "null".to_owned(),
        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        other => other.to_string(),
    }
}

// PyYAML's implicit resolvers (yaml/resolver.py), written out by hand.

fn is_py_bool(t: &str) -> bool {
    matches!(
        t,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn digits_or_underscores(s: &str, digit: impl Fn(u8) -> bool) -> bool {
    s.bytes().all(|c| c == b'_' || digit(c))
}

/// `[0-5]?[0-9]`, one sexagesimal group.
fn is_base60_group(s: &str) -> bool {
    match s.as_bytes() {
        [d] => d.is_ascii_digit(),
        [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
        _ => false,
    }
}

/// `[0-9][0-9_]*` when `nonzero_first` is false, `[1-9][0-9_]*` otherwise.
fn is_decimal_run(s: &str, nonzero_first: bool) -> bool {
    match s.as_bytes().split_first() {
        Some((first, rest)) => {
            let first_ok = if nonzero_first {
                (b'1'..=b'9').contains(first)
            } else {
                first.is_ascii_digit()
            };
            first_ok && rest.iter().all(|&c| c == b'_' || c.is_ascii_digit())
        }
        None => false,
    }
}

fn is_py_int(t: &str) -> bool {
    let s = t.strip_prefix(['-', '+']).unwrap_or(t);
    if let Some(b) = s.strip_prefix("0b") {
        return !b.is_empty() && digits_or_underscores(b, |c| c == b'0' || c == b'1');
    }
    if let Some(h) = s.strip_prefix("0x") {
        return !h.is_empty() && digits_or_underscores(h, |c| c.is_ascii_hexdigit());
    }
    if s == "0" {
        return true;
    }
    if let Some(o) = s.strip_prefix('0') {
        return !o.is_empty() && digits_or_underscores(o, |c| (b'0'..=b'7').contains(&c));
    }
    let mut groups = s.split(':');
    let head = groups.next().unwrap_or_default();
    is_decimal_run(head, true) && groups.all(is_base60_group)
}

fn is_py_float(t: &str) -> bool {
    if matches!(t, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (signed, s) = match t.strip_prefix(['-', '+']) {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if matches!(s, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    if let Some(e) = exponent {
        // PyYAML requires the exponent's sign.
        let Some(digits) = e.strip_prefix(['-', '+']) else {
            return false;
        };
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    let Some((int_part, frac)) = mantissa.split_once('.') else {
        return false;
    };
    if !digits_or_underscores(frac, |c| c.is_ascii_digit()) {
        return false;
    }
    if int_part.is_empty() {
        // `\.[0-9_]+`, unsigned.
        return !signed && !frac.is_empty();
    }
    if is_decimal_run(int_part, false) {
        return true;
    }
    // Sexagesimal float `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`, no exponent.
    let mut groups = int_part.split(':');
    let head = groups.next().unwrap_or_default();
    let rest: Vec<&str> = groups.collect();
    exponent.is_none()
        && is_decimal_run(head, false)
        && !rest.is_empty()
        && rest.iter().all(|g| is_base60_group(g))
}

#[cfg(test)]
mod tests;
