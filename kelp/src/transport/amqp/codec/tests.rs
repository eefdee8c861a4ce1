//! Tests of `codec`.

use super::*;
use crate::content::value::Value;

fn read_all(mut bytes: BytesMut) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(f) = read_frame(&mut bytes, 131_072).unwrap() {
        frames.push(f);
    }
    assert!(bytes.is_empty(), "leftover bytes");
    frames
}

fn flatten(mut out: Outbound) -> BytesMut {
    let mut all = BytesMut::new();
    for chunk in out.take() {
        all.put_slice(&chunk);
    }
    all
}

#[test]
fn publish_frames_split_bodies_at_frame_max() {
    let properties = Properties {
        content_type: Some(SharedStr::from_static("application/json")),
        delivery_mode: Some(2),
        priority: Some(0),
        headers: [("compression".to_owned(), Value::from("application/x-gzip"))].into(),
        expiration: Some(SharedStr::from("1500")),
        timestamp: Some(1_700_000_000),
        ..Properties::default()
    };
    let body = Bytes::from(vec![7u8; 10_000]);
    let mut out = Outbound::new();
    put_publish(&mut out, 3, "ex", "rk", true, &properties, &body, 4096).unwrap();
    assert!(!out.chunks.is_empty(), "large body pieces travel as chunks");
    let frames = read_all(flatten(out));
    // method + header + ceil(10000 / 4088) = 3 body frames
    assert_eq!(frames.len(), 5);
    let Frame::Header(3, header) = &frames[1] else { panic!("a header") };
    assert_eq!(header.body_size, 10_000);
    assert_eq!(header.properties, properties);
    let mut joined = Vec::new();
    for f in &frames[2..] {
        let Frame::Body(3, piece) = f else { panic!("a body") };
        assert!(piece.len() <= 4088);
        joined.extend_from_slice(piece);
    }
    assert_eq!(joined, body);
    // The method is basic.publish, which amq-protocol decodes too.
    let Frame::Method(3, Method::Other(AMQPClass::Basic(methods::basic::AMQPMethod::Publish(p)))) = &frames[0] else {
        panic!("basic.publish: {:?}", frames[0])
    };
    assert_eq!(p.exchange.as_str(), "ex");
    assert_eq!(p.routing_key.as_str(), "rk");
    assert!(p.mandatory && !p.immediate);
}

#[test]
fn settle_frames_decode() {
    let mut buf = BytesMut::new();
    put_settle(&mut buf, 1, Settle::Ack { tag: 42, multiple: true });
    put_settle(&mut buf, 1, Settle::Nack { tag: 43, multiple: false, requeue: true });
    put_heartbeat(&mut buf);
    let frames = read_all(buf);
    assert!(matches!(frames[0], Frame::Method(1, Method::Ack { delivery_tag: 42, multiple: true })));
    assert!(matches!(frames[1], Frame::Method(1, Method::Nack { delivery_tag: 43, multiple: false })));
    assert!(matches!(frames[2], Frame::Heartbeat));
}

#[test]
fn other_methods_go_through_amq_protocol() {
    let mut buf = BytesMut::new();
    let declare = methods::queue::Declare {
        queue: short("q").unwrap(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: to_amqp_table(&[("x-max-length".to_owned(), Value::Int(5))].into_iter().collect()).unwrap(),
    };
    put_method(&mut buf, 2, AMQPClass::Queue(methods::queue::AMQPMethod::Declare(declare))).unwrap();
    let frames = read_all(buf);
    let Frame::Method(2, Method::Other(AMQPClass::Queue(methods::queue::AMQPMethod::Declare(d)))) = &frames[0] else {
        panic!("queue.declare")
    };
    assert_eq!(d.queue.as_str(), "q");
    let args = from_amqp_table(&d.arguments).unwrap();
    assert_eq!(args["x-max-length"], Value::Int(5));
}

#[test]
fn partial_and_bad_frames() {
    let mut buf = BytesMut::new();
    put_heartbeat(&mut buf);
    let mut partial = BytesMut::from(&buf[..5]);
    assert!(read_frame(&mut partial, 0).unwrap().is_none());
    let mut bad_end = BytesMut::from(&b"\x08\x00\x00\x00\x00\x00\x00\xAB"[..]);
    assert_eq!(read_frame(&mut bad_end, 0).unwrap_err().kind(), ErrorKind::Protocol);
    let mut too_big = BytesMut::from(&b"\x03\x00\x01\x00\x10\x00\x00"[..]);
    assert_eq!(read_frame(&mut too_big, 4096).unwrap_err().kind(), ErrorKind::Protocol);
    let mut unknown = BytesMut::from(&b"\x09\x00\x00\x00\x00\x00\x00\xCE"[..]);
    assert!(read_frame(&mut unknown, 0).is_err());
    let mut garbage_method = BytesMut::from(&b"\x01\x00\x00\x00\x00\x00\x02\x00\x3c\xCE"[..]);
    assert!(read_frame(&mut garbage_method, 0).is_err());
}

/// A method frame: `class`.`method`, then `before` (the fields ahead of
/// the table), then a table `{"k": [[[...]]]}` of `depth` nested arrays.
fn method_with_nested_arrays(class: u16, method: u16, before: &[u8], depth: u32) -> BytesMut {
    let mut arrays = Vec::new();
    for level in 0..depth {
        arrays.push(b'A');
        arrays.extend_from_slice(&((depth - level - 1) * 5).to_be_bytes());
    }
    let mut payload = BytesMut::new();
    payload.put_u16(class);
    payload.put_u16(method);
    payload.put_slice(before);
    payload.put_u32(arrays.len() as u32 + 2);
    payload.put_slice(b"\x01k");
    payload.put_slice(&arrays);
    let mut frame = BytesMut::new();
    frame.put_u8(FRAME_METHOD);
    frame.put_u16(1);
    frame.put_u32(payload.len() as u32);
    frame.put_slice(&payload);
    frame.put_u8(FRAME_END);
    frame
}

#[test]
fn deeply_nested_tables_are_refused_not_a_stack_overflow() {
    // On a thread with tokio's default worker stack, where the reader runs.
    let checks = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            // queue.declare (reserved, queue "q", bits): 26,000 levels
            // fill a 128 KiB frame, and once crashed amq-protocol's parser.
            let mut deep = method_with_nested_arrays(50, 10, b"\x00\x00\x01q\x00", 26_000);
            let err = read_frame(&mut deep, 131_072).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol);
            assert!(err.message().contains("nested too deeply"), "{err}");
            // connection.start (version 0-9) within the handshake's 4 KiB.
            let mut start = method_with_nested_arrays(10, 10, b"\x00\x09", 800);
            assert!(read_frame(&mut start, 0).is_err());
            // Nesting kelp's own decoder accepts still reaches amq-protocol.
            let mut shallow = method_with_nested_arrays(50, 10, b"\x00\x00\x01q\x00", 30);
            let frame = read_frame(&mut shallow, 131_072).unwrap();
            assert!(
                matches!(
                    frame,
                    Some(Frame::Method(1, Method::Other(AMQPClass::Queue(methods::queue::AMQPMethod::Declare(_)))))
                ),
                "{frame:?}"
            );
            // queue.unbind has no bits before its table.
            let mut unbind = method_with_nested_arrays(50, 50, b"\x00\x00\x01q\x01e\x01r", 26_000);
            assert!(read_frame(&mut unbind, 131_072).is_err());
        })
        .unwrap();
    checks.join().unwrap();
}

#[test]
fn long_names_are_refused_before_anything_is_written() {
    let mut out = Outbound::new();
    let long = "k".repeat(300);
    let err = put_publish(&mut out, 1, "", &long, false, &Properties::default(), &Bytes::new(), 4096)
        .unwrap_err();
    assert!(err.is_config());
    assert!(out.is_empty());
}
