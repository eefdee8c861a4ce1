//! Tests of `wire`.

use super::*;

fn table(pairs: &[(&str, Value)]) -> FieldTable {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

#[test]
fn tables_round_trip() {
    let mut nested = FieldTable::new();
    nested.insert("deep".into(), Value::Array(vec![Value::Int(1), Value::Null, "x".into()]));
    let t = table(&[
        ("bool", Value::Bool(true)),
        ("small", Value::Int(-5)),
        ("big", Value::Int(1 << 40)),
        ("float", Value::Float(2.5)),
        ("text", "héllo".into()),
        ("bytes", Value::Bytes(Bytes::from_static(b"\x00\xff"))),
        ("when", Value::Timestamp(1_700_000_000)),
        ("price", Value::Decimal("12.34".into())),
        ("negative", Value::Decimal("-0.05".into())),
        ("null", Value::Null),
        ("map", Value::Map(nested)),
    ]);
    let encoded = encode_table(&t).unwrap();
    assert_eq!(decode_table(&encoded).unwrap(), t);
}

#[test]
fn integers_use_the_smallest_rabbitmq_width() {
    let encoded = encode_table(&table(&[("n", Value::Int(7))])).unwrap();
    assert_eq!(&encoded[..], b"\x00\x00\x00\x07\x01nI\x00\x00\x00\x07");
    let encoded = encode_table(&table(&[("n", Value::Int(1 << 33))])).unwrap();
    assert_eq!(encoded[6], b'l');
}

#[test]
fn every_rabbitmq_type_code_decodes() {
    // One entry per type, as RabbitMQ and py-amqp write them.
    let mut body = BytesMut::new();
    let mut entry = |key: &str, kind: u8, payload: &[u8]| {
        body.put_u8(key.len() as u8);
        body.put_slice(key.as_bytes());
        body.put_u8(kind);
        body.put_slice(payload);
    };
    entry("b", b'b', &[0xff]);
    entry("B", b'B', &[0xff]);
    entry("s", b's', &[0xff, 0xfe]);
    entry("u", b'u', &[0xff, 0xfe]);
    entry("i", b'i', &[0xff, 0xff, 0xff, 0xff]);
    entry("L", b'L', &[0, 0, 0, 0, 0, 0, 1, 0]);
    entry("f", b'f', &1.5f32.to_be_bytes());
    entry("D", b'D', &[2, 0, 0, 0x04, 0xd2]);
    entry("S", b'S', &[0, 0, 0, 2, 0xc3, 0x28]); // not UTF-8: bytes
    let mut framed = BytesMut::new();
    framed.put_u32(body.len() as u32);
    framed.put_slice(&body);
    let t = decode_table(&framed.freeze()).unwrap();
    assert_eq!(t["b"], Value::Int(-1));
    assert_eq!(t["B"], Value::Int(255));
    assert_eq!(t["s"], Value::Int(-2));
    assert_eq!(t["u"], Value::Int(65534));
    assert_eq!(t["i"], Value::Int(4_294_967_295));
    assert_eq!(t["L"], Value::Int(256));
    assert_eq!(t["f"], Value::Float(1.5));
    assert_eq!(t["D"], Value::Decimal("12.34".into()));
    assert_eq!(t["S"], Value::Bytes(Bytes::from_static(b"\xc3\x28")));
}

#[test]
fn malformed_tables_are_protocol_errors() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x05\x01k",          // length past the end
        b"\x00\x00\x00\x03\x01kZ",         // unknown type
        b"\x00\x00\x00\x04\x01kS\x00",     // truncated long string
        b"\x00\x00\x00\x02\x05k",          // key length past the end
        b"\x00\x00\x00\x06\x01kS\xff\xff", // huge length
    ];
    for case in cases {
        let err = decode_table(&Bytes::copy_from_slice(case)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{case:?}");
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let mut value = Value::Null;
    for _ in 0..200 {
        value = Value::Array(vec![value]);
    }
    assert!(encode_table(&table(&[("deep", value)])).is_err());
    // And on the way in: 200 nested arrays.
    let mut payload = Vec::new();
    for i in 0..200u32 {
        let remaining = (200 - i - 1) * 5;
        payload.push(b'A');
        payload.extend_from_slice(&remaining.to_be_bytes());
    }
    let mut framed = BytesMut::new();
    framed.put_u32(payload.len() as u32 + 2);
    framed.put_slice(b"\x01k");
    framed.put_slice(&payload);
    assert!(decode_table(&framed.freeze()).is_err());
}

#[test]
fn long_short_strings_are_refused() {
    let long = "k".repeat(256);
    let err = encode_table(&table(&[(long.as_str(), Value::Null)])).unwrap_err();
    assert!(err.is_config());
}
