//! Primitive AMQP 0-9-1 encodings: a bounds-checked reader, and field tables
//! (headers, arguments) to and from kelp's [`Value`].
//!
//! Everything here reads bytes a broker (or anyone on the network) sent, so
//! every length is checked against what is left and nesting is bounded: bad
//! input is a [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) error,
//! never a panic. Fuzzed by `fuzz/fuzz_targets/field_table.rs`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::content::text::SharedStr;

use crate::content::value::{FieldTable, Value};

use crate::error::{Error, ErrorKind, Result};

/// Nested tables and arrays deeper than this are refused (a stack guard).
const MAX_DEPTH: usize = 32;

fn malformed(what: &str) -> Error {
    Error::new(ErrorKind::Protocol, format!("malformed AMQP data: {what}"))
}

/// Reads AMQP primitives from a byte buffer, checking every length.
pub(crate) struct Reader<'a> {
    bytes: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a Bytes) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| malformed("a length runs past the end of the frame"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// `n` bytes as a zero-copy slice of the frame.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes> {
        let start = self.pos;
        self.take(n)?;
        Ok(self.bytes.slice(start..self.pos))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        Ok(u64::from_be_bytes(word))
    }

    /// A short string (u8 length), as text pointing into the frame.
    pub(crate) fn short_str(&mut self) -> Result<SharedStr> {
        let len = usize::from(self.u8()?);
        let bytes = self.bytes(len)?;
        SharedStr::from_utf8(bytes).ok_or_else(|| malformed("a short string is not UTF-8"))
    }

    /// A long string (u32 length) as raw bytes.
    pub(crate) fn long_bytes(&mut self) -> Result<Bytes> {
        let len = self.u32()? as usize;
        self.bytes(len)
    }

    /// A field table.
    pub(crate) fn table(&mut self) -> Result<FieldTable> {
        self.table_at(0)
    }

    fn table_at(&mut self, depth: usize) -> Result<FieldTable> {
        if depth > MAX_DEPTH {
            return Err(malformed("tables nested too deeply"));
        }
        let len = self.u32()? as usize;
        let body = self.bytes(len)?;
        let mut inner = Reader::new(&body);
        let mut table = FieldTable::new();
        while inner.remaining() > 0 {
            let key = inner.short_str()?;
            let value = inner.value(depth + 1)?;
            table.insert(key.to_string(), value);
        }
        Ok(table)
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(malformed("values nested too deeply"));
        }
        let kind = self.u8()?;
        Ok(match kind {
            b't' => Value::Bool(self.u8()? != 0),
            b'b' => Value::Int(i64::from(self.u8()? as i8)),
            b'B' => Value::Int(i64::from(self.u8()?)),
            // The spec says 'U' for a signed short; RabbitMQ writes 's'.
            b's' | b'U' => Value::Int(i64::from(self.u16()? as i16)),
            b'u' => Value::Int(i64::from(self.u16()?)),
            b'I' => Value::Int(i64::from(self.u32()? as i32)),
            b'i' => Value::Int(i64::from(self.u32()?)),
            // RabbitMQ reads both as signed 64-bit.
            b'l' | b'L' => Value::Int(self.u64()? as i64),
            b'f' => Value::Float(f64::from(f32::from_bits(self.u32()?))),
            b'd' => Value::Float(f64::from_bits(self.u64()?)),
            b'D' => {
                let scale = self.u8()?;
                let raw = self.u32()? as i32;
                Value::Decimal(decimal_text(scale, raw))
            }
            b'S' => {
                let bytes = self.long_bytes()?;
                match std::str::from_utf8(&bytes) {
                    Ok(text) => Value::String(text.to_owned()),
                    Err(_) => Value::Bytes(bytes),
                }
            }
            b'x' => Value::Bytes(self.long_bytes()?),
            b'A' => {
                let body = self.long_bytes()?;
                let mut inner = Reader::new(&body);
                let mut items = Vec::new();
                while inner.remaining() > 0 {
                    items.push(inner.value(depth + 1)?);
                }
                Value::Array(items)
            }
            b'T' => Value::Timestamp(self.u64()?),
            b'F' => Value::Map(self.table_at(depth + 1)?),
            b'V' => Value::Null,
            other => {
                return Err(malformed(&format!(
                    "unknown field type {:?} (0x{other:02x})",
                    char::from(other)
                )));
            }
        })
    }
}

/// `raw` with `scale` digits after the decimal point, as text.
fn decimal_text(scale: u8, raw: i32) -> String {
    let negative = raw < 0;
    let digits = raw.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let text = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!("{}.{}", &digits[..digits.len() - scale], &digits[digits.len() - scale..])
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    if negative { format!("-{text}") } else { text }
}

/// Parse decimal text into AMQP's (scale, value) when it fits.
fn decimal_parts(text: &str) -> Option<(u8, i32)> {
    let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
    let scale = u8::try_from(frac_part.len()).ok()?;
    let joined = format!("{int_part}{frac_part}");
    let value: i32 = joined.parse().ok()?;
    Some((scale, value))
}

/// Write a short string; names longer than 255 bytes are refused.
pub(crate) fn put_short_str(buf: &mut BytesMut, s: &str) -> Result<()> {
    let len = u8::try_from(s.len()).map_err(|_| {
        Error::config(format!(
            "'{}…' is {} bytes long; AMQP short strings hold at most 255",
            s.chars().take(32).collect::<String>(),
            s.len()
        ))
    })?;
    buf.put_u8(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Write a field table (u32 length, then entries).
pub(crate) fn put_table(buf: &mut BytesMut, table: &FieldTable) -> Result<()> {
    put_table_at(buf, table, 0)
}

fn put_table_at(buf: &mut BytesMut, table: &FieldTable, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::encode("field table nested too deeply"));
    }
    let start = buf.len();
    buf.put_u32(0);
    for (key, value) in table {
        put_short_str(buf, key)?;
        put_value(buf, value, depth + 1)?;
    }
    patch_length(buf, start)
}

/// Fill in the u32 length placeholder written at `start`.
fn patch_length(buf: &mut BytesMut, start: usize) -> Result<()> {
    let len = u32::try_from(buf.len() - start - 4)
        .map_err(|_| Error::encode("field table larger than 4 GiB"))?;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn put_long_bytes(buf: &mut BytesMut, kind: u8, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| Error::encode("field value larger than 4 GiB"))?;
    buf.put_u8(kind);
    buf.put_u32(len);
    buf.put_slice(bytes);
    Ok(())
}

fn put_value(buf: &mut BytesMut, value: &Value, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::encode("field value nested too deeply"));
    }
    match value {
        Value::Null => buf.put_u8(b'V'),
        Value::Bool(b) => {
            buf.put_u8(b't');
            buf.put_u8(u8::from(*b));
        }
        // As py-amqp does: 32 bits when they suffice, else 64.
        Value::Int(i) => match i32::try_from(*i) {
            Ok(small) => {
                buf.put_u8(b'I');
                buf.put_i32(small);
            }
            Err(_) => {
                buf.put_u8(b'l');
                buf.put_i64(*i);
            }
        },
        // RabbitMQ has no unsigned 64-bit type: keep the exact value as text.
        Value::UInt(u) => put_long_bytes(buf, b'S', u.to_string().as_bytes())?,
        Value::Float(f) => {
            buf.put_u8(b'd');
            buf.put_f64(*f);
        }
        Value::Decimal(text) => match decimal_parts(text) {
            Some((scale, raw)) => {
                buf.put_u8(b'D');
                buf.put_u8(scale);
                buf.put_i32(raw);
            }
            None => put_long_bytes(buf, b'S', text.as_bytes())?,
        },
        Value::String(s) | Value::DateTime(s) | Value::Date(s) | Value::Time(s) | Value::Uuid(s) => {
            put_long_bytes(buf, b'S', s.as_bytes())?;
        }
        Value::Bytes(b) => put_long_bytes(buf, b'x', b)?,
        Value::Timestamp(t) => {
            buf.put_u8(b'T');
            buf.put_u64(*t);
        }
        Value::Array(items) => {
            buf.put_u8(b'A');
            let start = buf.len();
            buf.put_u32(0);
            for item in items {
                put_value(buf, item, depth + 1)?;
            }
            patch_length(buf, start)?;
        }
        Value::Map(table) => {
            buf.put_u8(b'F');
            put_table_at(buf, table, depth + 1)?;
        }
    }
    Ok(())
}

/// Decode a standalone field table (for the fuzzer and tests).
pub(crate) fn decode_table(bytes: &Bytes) -> Result<FieldTable> {
    Reader::new(bytes).table()
}

/// Encode a standalone field table.
pub(crate) fn encode_table(table: &FieldTable) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    put_table(&mut buf, table)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests;
