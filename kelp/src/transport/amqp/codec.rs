//! AMQP 0-9-1 frames: the only module that knows the `amq-protocol` crate.
//!
//! Frames are cut out of the read buffer without copying; message bodies
//! are slices of it. The per-message methods (deliver, get-ok, return, ack,
//! nack, publish) and content headers are read and written here directly, to
//! give zero-copy names and properties; every other method goes through
//! `amq-protocol`'s generated codec. Fuzzed by `fuzz/fuzz_targets/frames.rs`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use amq_protocol::frame::{AMQPFrame, gen_frame};
use amq_protocol::protocol::{AMQPClass, parse_class};
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable as AmqpTable;

use super::wire::{self, Reader, put_short_str, put_table};
use crate::error::reply_code::FRAME_ERROR;
use crate::content::message::Properties;
use crate::content::text::SharedStr;
use crate::content::value::FieldTable;
use crate::error::{Error, ErrorKind, Result};

pub(crate) use amq_protocol::protocol as methods;
pub(crate) use amq_protocol::types::{LongString, ShortString};

pub(crate) const FRAME_METHOD: u8 = 1;
pub(crate) const FRAME_HEADER: u8 = 2;
pub(crate) const FRAME_BODY: u8 = 3;
pub(crate) const FRAME_HEARTBEAT: u8 = 8;
pub(crate) const FRAME_END: u8 = 0xCE;
/// Frame type, channel, size, and the end marker.
pub(crate) const FRAME_OVERHEAD: usize = 8;
/// The smallest frame_max a peer may impose (AMQP 0-9-1 §4.2.3).
pub(crate) const FRAME_MIN_SIZE: u32 = 4096;

const CLASS_BASIC: u16 = 60;

/// The protocol header a client sends first.
pub(crate) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

fn protocol_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Protocol, message.into()).with_reply(FRAME_ERROR, "FRAME_ERROR")
}

/// A frame read from the broker.
#[derive(Debug)]
pub(crate) enum Frame {
    Method(u16, Method),
    Header(u16, ContentHeader),
    Body(u16, Bytes),
    Heartbeat,
}

/// An incoming method. The per-message ones are decoded here without
/// allocating; the rest are `amq-protocol`'s.
#[derive(Debug)]
pub(crate) enum Method {
    Deliver(Deliver),
    GetOk(GetOk),
    Return(Return),
    Ack { delivery_tag: u64, multiple: bool },
    Nack { delivery_tag: u64, multiple: bool },
    Other(AMQPClass),
}

#[derive(Debug)]
pub(crate) struct Deliver {
    pub(crate) consumer_tag: SharedStr,
    pub(crate) delivery_tag: u64,
    pub(crate) redelivered: bool,
    pub(crate) exchange: SharedStr,
    pub(crate) routing_key: SharedStr,
}

#[derive(Debug)]
pub(crate) struct GetOk {
    pub(crate) delivery_tag: u64,
    pub(crate) redelivered: bool,
    pub(crate) exchange: SharedStr,
    pub(crate) routing_key: SharedStr,
}

#[derive(Debug)]
pub(crate) struct Return {
    pub(crate) reply_code: u16,
    pub(crate) reply_text: SharedStr,
    pub(crate) exchange: SharedStr,
    pub(crate) routing_key: SharedStr,
}

/// A content header: the body size and the message properties.
#[derive(Debug)]
pub(crate) struct ContentHeader {
    pub(crate) body_size: u64,
    pub(crate) properties: Properties,
}

/// Cut the next complete frame out of `buf`, if there is one.
///
/// `frame_max` bounds the payload (0 before tuning: then only the minimum
/// frame size is allowed, as during the handshake).
pub(crate) fn read_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    let limit = if frame_max == 0 { FRAME_MIN_SIZE } else { frame_max };
    if size as usize + FRAME_OVERHEAD > limit as usize {
        return Err(protocol_error(format!(
            "the broker sent a frame of {} bytes; the negotiated maximum is {limit}",
            size as usize + FRAME_OVERHEAD
        )));
    }
    let total = 7 + size as usize + 1;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    if frame[total - 1] != FRAME_END {
        return Err(protocol_error("a frame does not end with the frame-end octet"));
    }
    frame.advance(7);
    frame.truncate(size as usize);
    let payload = frame;
    Ok(Some(match kind {
        FRAME_METHOD => Frame::Method(channel, parse_method(&payload)?),
        FRAME_HEADER => Frame::Header(channel, parse_content_header(&payload)?),
        FRAME_BODY => Frame::Body(channel, payload),
        FRAME_HEARTBEAT => Frame::Heartbeat,
        other => return Err(protocol_error(format!("unknown frame type {other}"))),
    }))
}

/// Decode a method frame's payload.
pub(crate) fn parse_method(payload: &Bytes) -> Result<Method> {
    let mut r = Reader::new(payload);
    let class = r.u16()?;
    let method = r.u16()?;
    if class == CLASS_BASIC {
        match method {
            60 => {
                let consumer_tag = r.short_str()?;
                let delivery_tag = r.u64()?;
                let redelivered = r.u8()? & 1 != 0;
                let exchange = r.short_str()?;
                let routing_key = r.short_str()?;
                return Ok(Method::Deliver(Deliver {
                    consumer_tag,
                    delivery_tag,
                    redelivered,
                    exchange,
                    routing_key,
                }));
            }
            71 => {
                let delivery_tag = r.u64()?;
                let redelivered = r.u8()? & 1 != 0;
                let exchange = r.short_str()?;
                let routing_key = r.short_str()?;
                let _message_count = r.u32()?;
                return Ok(Method::GetOk(GetOk {
                    delivery_tag,
                    redelivered,
                    exchange,
                    routing_key,
                }));
            }
            50 => {
                let reply_code = r.u16()?;
                let reply_text = r.short_str()?;
                let exchange = r.short_str()?;
                let routing_key = r.short_str()?;
                return Ok(Method::Return(Return {
                    reply_code,
                    reply_text,
                    exchange,
                    routing_key,
                }));
            }
            80 => {
                let delivery_tag = r.u64()?;
                let multiple = r.u8()? & 1 != 0;
                return Ok(Method::Ack {
                    delivery_tag,
                    multiple,
                });
            }
            120 => {
                let delivery_tag = r.u64()?;
                let multiple = r.u8()? & 1 != 0;
                return Ok(Method::Nack {
                    delivery_tag,
                    multiple,
                });
            }
            _ => {}
        }
    }
    check_table_depth(class, method, &mut r)?;
    match parse_class(&payload[..]) {
        Ok((_, class)) => Ok(Method::Other(class)),
        Err(e) => Err(protocol_error(format!(
            "cannot decode method {class}.{method}: {e}"
        ))),
    }
}

/// `amq-protocol` parses nested field tables and arrays by recursion with no
/// limit: one frame of nested arrays would overflow the reader task's stack,
/// which aborts the process. So the table of each method that carries one is
/// first walked by kelp's own reader, which refuses deep nesting. `r` stands
/// just after the class and method ids.
fn check_table_depth(class: u16, method: u16, r: &mut Reader<'_>) -> Result<()> {
    enum Field {
        Octet,
        Short,
        ShortStr,
    }
    use Field::{Octet, Short, ShortStr};
    // The fields before the table (AMQP 0-9-1); bits travel as one octet.
    let before_table: &[Field] = match (class, method) {
        (10, 10) => &[Octet, Octet],                                      // connection.start
        (10, 11) => &[],                                                  // connection.start-ok
        (40, 10) => &[Short, ShortStr, ShortStr, Octet],                  // exchange.declare
        (40, 30) | (40, 40) => &[Short, ShortStr, ShortStr, ShortStr, Octet], // exchange.bind, unbind
        (50, 10) => &[Short, ShortStr, Octet],                            // queue.declare
        (50, 20) => &[Short, ShortStr, ShortStr, ShortStr, Octet],        // queue.bind
        (50, 50) => &[Short, ShortStr, ShortStr, ShortStr],               // queue.unbind
        (60, 20) => &[Short, ShortStr, ShortStr, Octet],                  // basic.consume
        _ => return Ok(()),
    };
    let mut walk = || -> Result<()> {
        for field in before_table {
            match field {
                Octet => drop(r.u8()?),
                Short => drop(r.u16()?),
                ShortStr => drop(r.short_str()?),
            }
        }
        r.table().map(drop)
    };
    walk().map_err(|e| protocol_error(format!("cannot decode method {class}.{method}: {}", e.message())))
}

// Property flags of the basic class, most significant bit first.
const P_CONTENT_TYPE: u16 = 1 << 15;
const P_CONTENT_ENCODING: u16 = 1 << 14;
const P_HEADERS: u16 = 1 << 13;
const P_DELIVERY_MODE: u16 = 1 << 12;
const P_PRIORITY: u16 = 1 << 11;
const P_CORRELATION_ID: u16 = 1 << 10;
const P_REPLY_TO: u16 = 1 << 9;
const P_EXPIRATION: u16 = 1 << 8;
const P_MESSAGE_ID: u16 = 1 << 7;
const P_TIMESTAMP: u16 = 1 << 6;
const P_TYPE: u16 = 1 << 5;
const P_USER_ID: u16 = 1 << 4;
const P_APP_ID: u16 = 1 << 3;
const P_CLUSTER_ID: u16 = 1 << 2;

/// Decode a content header frame's payload.
pub(crate) fn parse_content_header(payload: &Bytes) -> Result<ContentHeader> {
    let mut r = Reader::new(payload);
    let _class = r.u16()?;
    let _weight = r.u16()?;
    let body_size = r.u64()?;
    let mut flags = r.u16()?;
    // Bit 0 announces another flag word; basic has only 14 properties, so
    // any further words carry nothing we know: skip them.
    let mut more = flags & 1 != 0;
    while more {
        more = r.u16()? & 1 != 0;
    }
    flags &= !1;
    let mut p = Properties::default();
    let opt_str = |r: &mut Reader<'_>, bit: u16| -> Result<Option<SharedStr>> {
        if flags & bit != 0 { r.short_str().map(Some) } else { Ok(None) }
    };
    p.content_type = opt_str(&mut r, P_CONTENT_TYPE)?;
    p.content_encoding = opt_str(&mut r, P_CONTENT_ENCODING)?;
    if flags & P_HEADERS != 0 {
        p.headers = r.table()?;
    }
    if flags & P_DELIVERY_MODE != 0 {
        p.delivery_mode = Some(r.u8()?);
    }
    if flags & P_PRIORITY != 0 {
        p.priority = Some(r.u8()?);
    }
    p.correlation_id = opt_str(&mut r, P_CORRELATION_ID)?;
    p.reply_to = opt_str(&mut r, P_REPLY_TO)?;
    p.expiration = opt_str(&mut r, P_EXPIRATION)?;
    p.message_id = opt_str(&mut r, P_MESSAGE_ID)?;
    if flags & P_TIMESTAMP != 0 {
        p.timestamp = Some(r.u64()?);
    }
    p.kind = opt_str(&mut r, P_TYPE)?;
    p.user_id = opt_str(&mut r, P_USER_ID)?;
    p.app_id = opt_str(&mut r, P_APP_ID)?;
    p.cluster_id = opt_str(&mut r, P_CLUSTER_ID)?;
    Ok(ContentHeader {
        body_size,
        properties: p,
    })
}

// ---------------------------------------------------------------------------
// Writing

/// Start a frame; returns the position of its size field.
fn begin_frame(buf: &mut BytesMut, kind: u8, channel: u16) -> usize {
    buf.put_u8(kind);
    buf.put_u16(channel);
    let at = buf.len();
    buf.put_u32(0);
    at
}

fn end_frame(buf: &mut BytesMut, size_at: usize) {
    let size = (buf.len() - size_at - 4) as u32;
    buf[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    buf.put_u8(FRAME_END);
}

/// Bodies at least this large are sent from the caller's buffer (written
/// with vectored I/O) instead of being copied into the frame buffer.
pub(crate) const ZERO_COPY_THRESHOLD: usize = 2048;

/// Where encoded frames go: a growing buffer, plus body chunks that are
/// sent as they are.
pub(crate) struct Outbound {
    pub(crate) head: BytesMut,
    pub(crate) chunks: Vec<Bytes>,
}

impl Outbound {
    pub(crate) fn new() -> Outbound {
        Outbound {
            head: BytesMut::with_capacity(64 * 1024),
            chunks: Vec::new(),
        }
    }

    /// Append `bytes` without copying: what is buffered so far becomes a chunk.
    fn push_chunk(&mut self, bytes: Bytes) {
        if !self.head.is_empty() {
            self.chunks.push(self.head.split().freeze());
        }
        self.chunks.push(bytes);
    }

    /// Everything buffered, in order, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> Vec<Bytes> {
        let mut out = std::mem::take(&mut self.chunks);
        if !self.head.is_empty() {
            out.push(self.head.split().freeze());
        }
        out
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_empty() && self.chunks.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.chunks.iter().map(Bytes::len).sum::<usize>()
    }
}

/// basic.publish, its content header and body frames split at `frame_max`.
// The publish hot path: the arguments go straight into the frames.
#[allow(clippy::too_many_arguments)]
pub(crate) fn put_publish(
    out: &mut Outbound,
    channel: u16,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    properties: &Properties,
    body: &Bytes,
    frame_max: u32,
) -> Result<()> {
    let buf = &mut out.head;
    let start = buf.len();
    let result = (|| {
        let at = begin_frame(buf, FRAME_METHOD, channel);
        buf.put_u16(CLASS_BASIC);
        buf.put_u16(40);
        buf.put_u16(0); // reserved (ticket)
        put_short_str(buf, exchange)?;
        put_short_str(buf, routing_key)?;
        buf.put_u8(u8::from(mandatory));
        end_frame(buf, at);
        let at = begin_frame(buf, FRAME_HEADER, channel);
        buf.put_u16(CLASS_BASIC);
        buf.put_u16(0);
        buf.put_u64(body.len() as u64);
        put_properties(buf, properties)?;
        end_frame(buf, at);
        Ok(())
    })();
    if let Err(e) = result {
        buf.truncate(start); // nothing half-written reaches the wire
        return Err(e);
    }
    let max_payload = (frame_max.max(FRAME_MIN_SIZE) as usize) - FRAME_OVERHEAD;
    let mut offset = 0;
    while offset < body.len() {
        let end = (offset + max_payload).min(body.len());
        let piece = body.slice(offset..end);
        out.head.put_u8(FRAME_BODY);
        out.head.put_u16(channel);
        out.head.put_u32(piece.len() as u32);
        if piece.len() >= ZERO_COPY_THRESHOLD {
            out.push_chunk(piece);
        } else {
            out.head.put_slice(&piece);
        }
        out.head.put_u8(FRAME_END);
        offset = end;
    }
    Ok(())
}

pub(super) fn put_properties(buf: &mut BytesMut, p: &Properties) -> Result<()> {
    // py-amqp sends every property that is set, and always the headers
    // table (empty or not); so does kelp, to look the same on the wire.
    let mut flags = P_HEADERS;
    let set = |flags: &mut u16, bit: u16, present: bool| {
        if present {
            *flags |= bit;
        }
    };
    set(&mut flags, P_CONTENT_TYPE, p.content_type.is_some());
    set(&mut flags, P_CONTENT_ENCODING, p.content_encoding.is_some());
    set(&mut flags, P_DELIVERY_MODE, p.delivery_mode.is_some());
    set(&mut flags, P_PRIORITY, p.priority.is_some());
    set(&mut flags, P_CORRELATION_ID, p.correlation_id.is_some());
    set(&mut flags, P_REPLY_TO, p.reply_to.is_some());
    set(&mut flags, P_EXPIRATION, p.expiration.is_some());
    set(&mut flags, P_MESSAGE_ID, p.message_id.is_some());
    set(&mut flags, P_TIMESTAMP, p.timestamp.is_some());
    set(&mut flags, P_TYPE, p.kind.is_some());
    set(&mut flags, P_USER_ID, p.user_id.is_some());
    set(&mut flags, P_APP_ID, p.app_id.is_some());
    set(&mut flags, P_CLUSTER_ID, p.cluster_id.is_some());
    buf.put_u16(flags);
    let put = |buf: &mut BytesMut, s: &Option<SharedStr>| -> Result<()> {
        match s {
            Some(s) => put_short_str(buf, s),
            None => Ok(()),
        }
    };
    put(buf, &p.content_type)?;
    put(buf, &p.content_encoding)?;
    put_table(buf, &p.headers)?;
    if let Some(mode) = p.delivery_mode {
        buf.put_u8(mode);
    }
    if let Some(priority) = p.priority {
        buf.put_u8(priority);
    }
    put(buf, &p.correlation_id)?;
    put(buf, &p.reply_to)?;
    put(buf, &p.expiration)?;
    put(buf, &p.message_id)?;
    if let Some(ts) = p.timestamp {
        buf.put_u64(ts);
    }
    put(buf, &p.kind)?;
    put(buf, &p.user_id)?;
    put(buf, &p.app_id)?;
    put(buf, &p.cluster_id)?;
    Ok(())
}

/// basic.ack / basic.nack / basic.reject.
pub(crate) fn put_settle(buf: &mut BytesMut, channel: u16, settle: Settle) {
    let at = begin_frame(buf, FRAME_METHOD, channel);
    buf.put_u16(CLASS_BASIC);
    match settle {
        Settle::Ack { tag, multiple } => {
            buf.put_u16(80);
            buf.put_u64(tag);
            buf.put_u8(u8::from(multiple));
        }
        Settle::Nack {
            tag,
            multiple,
            requeue,
        } => {
            buf.put_u16(120);
            buf.put_u64(tag);
            buf.put_u8(u8::from(multiple) | (u8::from(requeue) << 1));
        }
        Settle::Reject { tag, requeue } => {
            buf.put_u16(90);
            buf.put_u64(tag);
            buf.put_u8(u8::from(requeue));
        }
    }
    end_frame(buf, at);
}

/// How a delivery is settled.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Settle {
    Ack { tag: u64, multiple: bool },
    Nack { tag: u64, multiple: bool, requeue: bool },
    Reject { tag: u64, requeue: bool },
}

pub(crate) fn put_heartbeat(buf: &mut BytesMut) {
    buf.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Any other method, through `amq-protocol`'s generator.
pub(crate) fn put_method(buf: &mut BytesMut, channel: u16, class: AMQPClass) -> Result<()> {
    let frame = AMQPFrame::Method(channel, class);
    let generated = gen_frame(&frame)(Vec::new().into())
        .map_err(|e| Error::encode(format!("cannot encode an AMQP method: {e}")))?;
    buf.put_slice(&generated.write);
    Ok(())
}

/// A field table of ours in `amq-protocol`'s type (via the wire format,
/// so that both agree on every type code).
pub(crate) fn to_amqp_table(table: &FieldTable) -> Result<AmqpTable> {
    if table.is_empty() {
        return Ok(AmqpTable::default());
    }
    let encoded = wire::encode_table(table)?;
    parse_field_table(&encoded[..])
        .map(|(_, t)| t)
        .map_err(|e| Error::encode(format!("cannot encode a field table: {e}")))
}

/// `amq-protocol`'s field table as one of ours.
pub(crate) fn from_amqp_table(table: &AmqpTable) -> Result<FieldTable> {
    let generated = gen_field_table(table)(Vec::new().into())
        .map_err(|e| Error::decode(format!("cannot re-encode a field table: {e}")))?;
    wire::decode_table(&Bytes::from(generated.write))
}

/// A short string for `amq-protocol`, refusing names over 255 bytes.
pub(crate) fn short(s: &str) -> Result<ShortString> {
    if s.len() > 255 {
        return Err(Error::config(format!(
            "'{}…' is {} bytes long; AMQP names hold at most 255",
            s.chars().take(32).collect::<String>(),
            s.len()
        )));
    }
    Ok(ShortString::from(s))
}

#[cfg(test)]
mod tests;
