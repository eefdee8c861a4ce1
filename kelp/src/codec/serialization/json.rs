//! JSON as Kombu writes it: Python's `json.dumps` layout and Kombu's type
//! extensions (`{"__type__": ..., "__value__": ...}`, kombu/utils/json.py).

use std::fmt;
use std::io;

use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::content::value::{FieldTable, Value};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The key pair that marks a Kombu extension object.
const TYPE_KEY: &str = "__type__";
const VALUE_KEY: &str = "__value__";

/// Python accepts base64 with or without trailing bits and padding quirks
/// (`base64.b64decode` without `validate`); so does this engine.
pub(crate) const LENIENT_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------
// Output: a serde_json formatter that writes what Python's json.dumps writes.

/// Formats like Python's `json.dumps` with its defaults, which Kombu uses:
/// `", "` and `": "` separators, `ensure_ascii` escaping, floats as Python's
/// `repr`, and bytes as Kombu's `bytes`/`base64` extension objects.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    #[inline]
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    #[inline]
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    #[inline]
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        write_py_float(w, value)
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        // Python has no f32: keep the digits the Rust value was written with
        // (0.1f32 as 0.1, not 0.10000000149011612).
        write_py_float(w, value)
    }

    #[inline]
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json has already escaped quotes, backslashes and control
        // characters; only DEL and non-ASCII remain. A branch-free scan
        // (which the compiler vectorizes) keeps the common ASCII case fast.
        let needs_escape = fragment.bytes().fold(false, |acc, b| acc | (b >= 0x7f));
        if needs_escape {
            write_escaped(w, fragment)
        } else {
            w.write_all(fragment.as_bytes())
        }
    }

    fn write_byte_array<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        value: &[u8],
    ) -> io::Result<()> {
        // Kombu's JSONEncoder: bytes that are UTF-8 travel as text, others as
        // base64, each wrapped in an extension object.
        match std::str::from_utf8(value) {
            Ok(text) => {
                w.write_all(br#"{"__type__": "bytes", "__value__": ""#)?;
                write_escaped(w, text)?;
            }
            Err(_) => {
                w.write_all(br#"{"__type__": "base64", "__value__": ""#)?;
                let mut enc = base64::write::EncoderWriter::new(
                    &mut *w,
                    &base64::engine::general_purpose::STANDARD,
                );
                io::Write::write_all(&mut enc, value)?;
                enc.finish()?;
            }
        }
        w.write_all(br#""}"#)
    }
}

/// Write `s` with Python's `ensure_ascii` escaping (without the quotes).
///
/// serde_json hands the formatter fragments that are already free of quotes,
/// backslashes and control characters, so on that path only DEL and
/// non-ASCII characters are escaped here; the byte-array path relies on the
/// full set.
fn write_escaped<W: ?Sized + io::Write>(w: &mut W, s: &str) -> io::Result<()> {
    let mut rest = s;
    loop {
        let at = rest
            .bytes()
            .position(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\');
        let Some(at) = at else {
            return w.write_all(rest.as_bytes());
        };
        // Every byte before `at` is ASCII, so `at` is a char boundary.
        let Some((head, tail)) = rest.split_at_checked(at) else {
            return w.write_all(rest.as_bytes());
        };
        w.write_all(head.as_bytes())?;
        let mut chars = tail.chars();
        let Some(ch) = chars.next() else {
            return Ok(());
        };
        write_char_escaped(w, ch)?;
        rest = chars.as_str();
    }
}

fn write_char_escaped<W: ?Sized + io::Write>(w: &mut W, ch: char) -> io::Result<()> {
    match ch {
        '"' => w.write_all(b"\\\""),
        '\\' => w.write_all(b"\\\\"),
        '\n' => w.write_all(b"\\n"),
        '\r' => w.write_all(b"\\r"),
        '\t' => w.write_all(b"\\t"),
        '\u{08}' => w.write_all(b"\\b"),
        '\u{0c}' => w.write_all(b"\\f"),
        _ => {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units).iter() {
                let u = *unit as usize;
                let esc = [
                    b'\\',
                    b'u',
                    HEX[(u >> 12) & 0xf],
                    HEX[(u >> 8) & 0xf],
                    HEX[(u >> 4) & 0xf],
                    HEX[u & 0xf],
                ];
                w.write_all(&esc)?;
            }
            Ok(())
        }
    }
}

/// A small stack buffer for float formatting, so no allocation per number.
struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl StackBuf {
    fn new() -> StackBuf {
        StackBuf {
            buf: [0; 64],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl io::Write for StackBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let end = self.len.checked_add(data.len());
        let dst = end.and_then(|end| self.buf.get_mut(self.len..end));
        let Some(dst) = dst else {
            return Err(io::Error::other("float text longer than 64 bytes"));
        };
        dst.copy_from_slice(data);
        self.len += data.len();
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A float as Python's `repr` does it: the shortest digits that round-trip,
/// positional when the decimal exponent is in -4..16 (always with a `.`),
/// scientific outside (`1e+16`, `1.5e-07`).
///
/// The shortest digits come from serde_json's own (fast) float formatter;
/// its text is re-laid out here whatever notation it chose.
fn write_py_float<W: ?Sized + io::Write, F: Into<f64> + Copy>(w: &mut W, value: F) -> io::Result<()>
where
    serde_json::ser::CompactFormatter: FloatWriter<F>,
{
    let wide: f64 = value.into();
    if !wide.is_finite() {
        // serde_json writes `null` for these before reaching the formatter;
        // keep the output valid JSON should that change.
        return w.write_all(b"null");
    }
    let mut sb = StackBuf::new();
    serde_json::ser::CompactFormatter.write_float(&mut sb, value)?;
    if let Some(text) = already_python(sb.as_bytes()) {
        return w.write_all(text);
    }
    let (negative, digits, decpt) =
        parse_float_text(sb.as_bytes()).ok_or_else(|| io::Error::other("unexpected float text"))?;
    let digits = digits.as_bytes();
    if negative {
        w.write_all(b"-")?;
    }
    if digits.is_empty() {
        return w.write_all(b"0.0");
    }
    if (-4 < decpt) && (decpt <= 16) {
        if decpt <= 0 {
            w.write_all(b"0.")?;
            for _ in 0..(-decpt) {
                w.write_all(b"0")?;
            }
            w.write_all(digits)?;
        } else {
            let point = decpt.unsigned_abs() as usize;
            if point < digits.len() {
                let (int_part, frac) = digits.split_at(point);
                w.write_all(int_part)?;
                w.write_all(b".")?;
                w.write_all(frac)?;
            } else {
                w.write_all(digits)?;
                for _ in digits.len()..point {
                    w.write_all(b"0")?;
                }
                w.write_all(b".0")?;
            }
        }
    } else {
        let (first, others) = digits.split_at(1);
        w.write_all(first)?;
        if !others.is_empty() {
            w.write_all(b".")?;
            w.write_all(others)?;
        }
        let e = decpt - 1;
        let sign = if e < 0 { '-' } else { '+' };
        write!(w, "e{sign}{:02}", e.unsigned_abs())?;
    }
    Ok(())
}

/// The formatter's text as is, when it is positional and in the range
/// where Python's repr is positional too: then both are the same text.
fn already_python(text: &[u8]) -> Option<&[u8]> {
    if text.iter().any(|&b| b == b'e' || b == b'E') {
        return None;
    }
    let unsigned = text.strip_prefix(b"-").unwrap_or(text);
    let point = unsigned.iter().position(|&b| b == b'.')?;
    let decpt = match unsigned.strip_prefix(b"0.") {
        Some(frac) => {
            // 0.000ddd: decpt is minus the zeros after the point.
            let zeros = frac.iter().take_while(|&&b| b == b'0').count();
            if zeros == frac.len() {
                return Some(text); // 0.0
            }
            -i32::try_from(zeros).ok()?
        }
        None => i32::try_from(point).ok()?,
    };
    ((-4 < decpt) && (decpt <= 16)).then_some(text)
}

/// Lets [`write_py_float`] take both widths through serde_json's formatter.
trait FloatWriter<F> {
    fn write_float(&mut self, w: &mut StackBuf, value: F) -> io::Result<()>;
}

impl FloatWriter<f64> for serde_json::ser::CompactFormatter {
    fn write_float(&mut self, w: &mut StackBuf, value: f64) -> io::Result<()> {
        serde_json::ser::Formatter::write_f64(self, w, value)
    }
}

impl FloatWriter<f32> for serde_json::ser::CompactFormatter {
    fn write_float(&mut self, w: &mut StackBuf, value: f32) -> io::Result<()> {
        serde_json::ser::Formatter::write_f32(self, w, value)
    }
}

/// Significant digits of a decimal number's text, without leading or
/// trailing zeros.
struct Digits {
    buf: [u8; 40],
    len: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Read `[-]int[.frac][e[+-]exp]` into (negative, digits, decpt) where the
/// value is `0.DIGITS x 10^decpt`. Zero has no digits.
fn parse_float_text(text: &[u8]) -> Option<(bool, Digits, i32)> {
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exp) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => {
            let (m, e) = text.split_at(at);
            let e = std::str::from_utf8(e.get(1..)?).ok()?;
            let e = e.strip_prefix('+').unwrap_or(e);
            (m, e.parse::<i32>().ok()?)
        }
        None => (text, 0),
    };
    let (int_part, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => {
            let (i, f) = mantissa.split_at(at);
            (i, f.get(1..)?)
        }
        None => (mantissa, &[][..]),
    };
    let mut digits = Digits {
        buf: [0; 40],
        len: 0,
    };
    let mut decpt = i32::try_from(int_part.len()).ok()?.checked_add(exp)?;
    let mut leading = true;
    for &b in int_part.iter().chain(frac) {
        if !b.is_ascii_digit() {
            return None;
        }
        if leading && b == b'0' {
            decpt -= 1;
            continue;
        }
        leading = false;
        *digits.buf.get_mut(digits.len)? = b;
        digits.len += 1;
    }
    while digits.len > 0 && digits.buf.get(digits.len - 1) == Some(&b'0') {
        digits.len -= 1;
    }
    Some((negative, digits, decpt))
}

/// Serialize any value as Kombu's JSON into a new buffer.
pub(crate) fn to_bytes<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Bytes> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    value.serialize(&mut ser)?;
    Ok(Bytes::from(out))
}

// ---------------------------------------------------------------------------
// Encoding a dynamic Value with the extensions.

/// Serializes a [`Value`] with Kombu's JSON type extensions for the variants
/// plain serde cannot tell apart from strings (dates, times, decimals,
/// UUIDs, AMQP timestamps). Bytes go through `serialize_bytes`, which the
/// formatter turns into the `bytes`/`base64` extension.
pub(crate) struct KombuJson<'a>(pub(crate) &'a Value);

impl Serialize for KombuJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::DateTime(s) => extension(serializer, "datetime", s.as_str()),
            Value::Date(s) => extension(serializer, "date", s.as_str()),
            Value::Time(s) => extension(serializer, "time", s.as_str()),
            Value::Decimal(s) => extension(serializer, "decimal", s.as_str()),
            Value::Uuid(s) => extension(serializer, "uuid", &UuidHex(s)),
            Value::Timestamp(t) => {
                let text = timestamp_isoformat(*t).map_err(serde::ser::Error::custom)?;
                extension(serializer, "datetime", text.as_str())
            }
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&KombuJson(item))?;
                }
                seq.end()
            }
            Value::Map(map) => {
                let mut m = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, &KombuJson(v))?;
                }
                m.end()
            }
            other => other.serialize(serializer),
        }
    }
}

fn extension<S: Serializer, V: Serialize + ?Sized>(
    serializer: S,
    kind: &str,
    value: &V,
) -> Result<S::Ok, S::Error> {
    let mut m = serializer.serialize_map(Some(2))?;
    m.serialize_entry(TYPE_KEY, kind)?;
    m.serialize_entry(VALUE_KEY, value)?;
    m.end()
}

/// `{"hex": "<32 hex digits>"}`, the keyword arguments of `uuid.UUID(**o)`.
struct UuidHex<'a>(&'a str);

impl Serialize for UuidHex<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(1))?;
        m.serialize_entry("hex", self.0)?;
        m.end()
    }
}

/// An AMQP timestamp as Python's `datetime.isoformat()` of an aware UTC
/// datetime: `2024-01-02T03:04:05+00:00`.
pub(crate) fn timestamp_isoformat(secs: u64) -> Result<String, String> {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        return Err(format!(
            "timestamp {secs} is after year 9999, which Python's datetime cannot represent"
        ));
    }
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    ))
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
///
/// Works in 400-year eras (146 097 days each) counted from 0000-03-01, so
/// that the leap day falls at the end of each counted year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // month, March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------
// Input: a Value with the extensions recognised, in one pass.

/// A [`Value`] decoded from JSON with Kombu's extension objects turned into
/// their variants, as Kombu's `object_hook` does (innermost objects first).
pub(crate) struct JsonValue(pub(crate) Value);

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonValue, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(JsonValue)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
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
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(JsonValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut table = FieldTable::new();
        while let Some(key) = map.next_key::<String>()? {
            let JsonValue(value) = map.next_value()?;
            table.insert(key, value);
        }
        if table.len() == 2 && table.contains_key(TYPE_KEY) && table.contains_key(VALUE_KEY) {
            return from_extension(table).map_err(de::Error::custom);
        }
        Ok(Value::Map(table))
    }
}

/// Turn `{"__type__": t, "__value__": v}` into the value Kombu's decoder
/// for `t` would produce. An unknown type is an error, as in Kombu.
fn from_extension(mut table: FieldTable) -> Result<Value, String> {
    let kind = table.remove(TYPE_KEY).unwrap_or_default();
    let value = table.remove(VALUE_KEY).unwrap_or_default();
    let Value::String(kind) = kind else {
        return Err(format!("unsupported Kombu JSON type extension {kind}"));
    };
    let text = |value: Value| match value {
        Value::String(s) => Ok(s),
        other => Err(format!(
            "Kombu JSON {kind:?} extension needs a string, found {other}"
        )),
    };
    match kind.as_str() {
        "datetime" => text(value).map(Value::DateTime),
        "date" => text(value).map(Value::Date),
        "time" => text(value).map(Value::Time),
        "decimal" => match value {
            // Python's Decimal() takes ints as well.
            Value::Int(i) => Ok(Value::Decimal(i.to_string())),
            Value::UInt(u) => Ok(Value::Decimal(u.to_string())),
            other => text(other).map(Value::Decimal),
        },
        "uuid" => uuid_from_kwargs(value).map(Value::Uuid),
        "bytes" => text(value).map(|s| Value::Bytes(Bytes::from(s.into_bytes()))),
        "base64" => {
            let s = text(value)?;
            base64_lenient(&s)
                .map(|b| Value::Bytes(Bytes::from(b)))
                .ok_or_else(|| "invalid base64 in a Kombu JSON \"base64\" extension".to_owned())
        }
        _ => Err(format!("unsupported Kombu JSON type extension {kind:?}")),
    }
}

/// Decode base64 as Python's `base64.b64decode` does by default: characters
/// outside the alphabet (such as line breaks) are skipped.
pub(crate) fn base64_lenient(s: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = s
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    LENIENT_B64.decode(clean).ok()
}

/// `uuid.UUID(hex=...)`: braces, `urn:uuid:` and hyphens are allowed around
/// the 32 hex digits. Kelp keeps the 32 lowercase digits.
fn uuid_from_kwargs(value: Value) -> Result<String, String> {
    let hex = match value {
        Value::Map(mut m) if m.len() == 1 => m.remove("hex"),
        _ => None,
    };
    let Some(Value::String(hex)) = hex else {
        return Err(
            "Kombu JSON \"uuid\" extension needs {\"hex\": \"<32 hex digits>\"}".to_owned(),
        );
    };
    normalize_uuid(&hex).ok_or_else(|| format!("badly formed UUID {hex:?}"))
}

/// 32 lowercase hex digits from any of Python's accepted spellings.
pub(crate) fn normalize_uuid(text: &str) -> Option<String> {
    let trimmed = text.replace("urn:", "").replace("uuid:", "");
    let digits: String = trimmed
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|&c| c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (digits.len() == 32 && digits.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digits)
}

/// `8-4-4-4-12` form of a UUID given as 32 hex digits (other text is kept).
pub(crate) fn hyphenate_uuid(hex: &str) -> String {
    match normalize_uuid(hex) {
        Some(d) if d.is_ascii() => {
            let parts = [
                d.get(0..8),
                d.get(8..12),
                d.get(12..16),
                d.get(16..20),
                d.get(20..32),
            ];
            if let [Some(a), Some(b), Some(c), Some(e), Some(f)] = parts {
                format!("{a}-{b}-{c}-{e}-{f}")
            } else {
                hex.to_owned()
            }
        }
        _ => hex.to_owned(),
    }
}

/// True if the body may contain an extension object; bodies without the
/// marker take the direct serde_json path for typed decoding.
pub(crate) fn may_have_extensions(body: &[u8]) -> bool {
    const MARKER: &[u8] = b"__type__";
    let mut from = 0;
    while let Some(rest) = body.get(from..) {
        let Some(at) = rest.iter().position(|&b| b == b'_') else {
            return false;
        };
        let start = from + at;
        if body.get(start..start + MARKER.len()) == Some(MARKER) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// Replace the extension variants by their plain forms so that typed
/// deserialization sees what a Rust type expects: text for dates, times
/// and decimals, the hyphenated form for UUIDs (bytes stay bytes).
pub(crate) fn plainify(value: &mut Value) {
    match value {
        Value::DateTime(s) | Value::Date(s) | Value::Time(s) | Value::Decimal(s) => {
            *value = Value::String(std::mem::take(s));
        }
        Value::Uuid(s) => *value = Value::String(hyphenate_uuid(s)),
        Value::Array(items) => items.iter_mut().for_each(plainify),
        Value::Map(map) => map.values_mut().for_each(plainify),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
