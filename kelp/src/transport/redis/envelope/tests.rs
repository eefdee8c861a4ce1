//! Tests of `envelope`.

use super::*;

fn content() -> Content {
    let mut properties = Properties {
        content_type: Some("application/json".into()),
        content_encoding: Some("utf-8".into()),
        delivery_mode: Some(2),
        priority: Some(5),
        correlation_id: Some("c-1".into()),
        reply_to: Some("replies".into()),
        expiration: Some("60500".into()),
        ..Properties::default()
    };
    properties.headers.insert("n".into(), 3i32.into());
    properties.headers.insert("compression".into(), "application/x-gzip".into());
    Content { properties, body: Bytes::from_static(b"{\"hello\": \"world\"}") }
}

#[test]
fn round_trip_keeps_every_field() {
    let raw = encode(&content(), "tasks", "tasks.add", "6c0e9d0a-7f43-4a5a-9b6d-1c2f3e4d5a6b");
    let back = decode(&raw).expect("decodes");
    let (a, b) = (&back.content.properties, &content().properties);
    assert_eq!(back.content.body, content().body);
    assert_eq!(a.content_type, b.content_type);
    assert_eq!(a.content_encoding, b.content_encoding);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.delivery_mode, Some(2));
    assert_eq!(a.priority, Some(5));
    assert_eq!(a.correlation_id, b.correlation_id);
    assert_eq!(a.reply_to, b.reply_to);
    assert_eq!(a.expiration, b.expiration);
    assert_eq!(back.exchange, "tasks");
    assert_eq!(back.routing_key, "tasks.add");
    assert_eq!(back.tag, "6c0e9d0a-7f43-4a5a-9b6d-1c2f3e4d5a6b");
    assert!(!back.redelivered);
}

#[test]
fn reads_what_kombu_writes() {
    // Captured from kombu 5.7 `Producer.publish({'hello': 'world'})` on Redis.
    let raw = br#"{"body": "eyJoZWxsbyI6ICJ3b3JsZCJ9", "content-encoding": "utf-8", "content-type": "application/json", "headers": {}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "tasks", "routing_key": "tasks"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "0b9b5c8e-2b2a-4a1f-8d39-5f8f0b1c7e11"}}"#;
    let e = decode(raw).expect("decodes");
    assert_eq!(&e.content.body[..], br#"{"hello": "world"}"#);
    assert_eq!(e.content.properties.priority, Some(0));
    assert_eq!(e.exchange, "tasks");
    assert_eq!(e.tag, "0b9b5c8e-2b2a-4a1f-8d39-5f8f0b1c7e11");
}

#[test]
fn the_body_shortcut_reads_what_the_full_parse_reads() {
    let kombu = br#"{"body": "eyJoZWxsbyI6ICJ3b3JsZCJ9", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"h": "\u00e9"}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "tasks", "routing_key": "tasks"}, "priority": 3, "body_encoding": "base64", "delivery_tag": "t-1"}}"#;
    let kelp = encode(&content(), "tasks", "tasks.add", "t-2");
    let plain = br#"{"body":"caf\u00e9 h\u00e9", "properties": {"delivery_tag": "t-3"}}"#;
    let plain_raw = "{\"body\":\"café\", \"properties\": {\"delivery_tag\": \"t-4\"}}";
    for raw in [&kombu[..], &kelp[..], &plain[..], plain_raw.as_bytes()] {
        let shortcut = decode(raw).expect("decodes");
        let full = decode_in_full(raw).expect("decodes in full");
        assert_eq!(shortcut.content.body, full.content.body);
        assert_eq!(shortcut.content.properties.headers, full.content.properties.headers);
        assert_eq!(shortcut.content.properties.priority, full.content.properties.priority);
        assert_eq!((&shortcut.exchange, &shortcut.routing_key, &shortcut.tag), (&full.exchange, &full.routing_key, &full.tag));
        assert!(shortcut.json_text && full.json_text);
    }
    assert!(split_leading_body(kombu).is_some() && split_leading_body(&kelp).is_some());
    assert!(split_leading_body(plain).is_none(), "escapes go to the full parse");
    assert_eq!(&decode(plain_raw.as_bytes()).expect("decodes").content.body[..], "café".as_bytes());
}

#[test]
fn the_body_shortcut_refuses_what_the_full_parse_refuses() {
    let cases: [&[u8]; 5] = [
        // A raw control character, with and without base64.
        b"{\"body\": \"eA\x01=\", \"properties\": {\"body_encoding\": \"base64\"}}",
        b"{\"body\": \"x\ty\", \"properties\": {}}",
        // Not UTF-8.
        b"{\"body\": \"x\xffy\", \"properties\": {}}",
        // Two bodies.
        br#"{"body": "eA==", "body": "eA==", "properties": {"body_encoding": "base64"}}"#,
        // Not base64.
        br#"{"body": "e!A=", "properties": {"body_encoding": "base64"}}"#,
    ];
    for raw in cases {
        assert!(split_leading_body(raw).is_some(), "a case for the shortcut: {}", String::from_utf8_lossy(raw));
        assert!(decode(raw).is_err(), "decoded: {}", String::from_utf8_lossy(raw));
        assert!(decode_in_full(raw).is_err(), "decoded in full: {}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn redelivered_marks_are_set_and_read() {
    let raw = encode(&content(), "", "q", "t");
    let marked = mark_redelivered(&raw).expect("valid");
    let e = decode(&marked).expect("decodes");
    assert!(e.redelivered);
    assert_eq!(e.content.properties.headers.get("redelivered"), Some(&crate::content::value::Value::Bool(true)));
}

#[test]
fn an_envelope_serde_json_cannot_hold_is_still_marked() {
    // An out-of-range number in a field kelp ignores: decodes, but is
    // no serde_json::Value (found by the envelope fuzzer).
    let raw = br#"{"body": "eA==", "headers": {"k": 1}, "odd": 1E400, "properties": {"body_encoding": "base64", "delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "q"}}}"#;
    assert!(decode(raw).is_ok());
    assert!(serde_json::from_slice::<serde_json::Value>(raw).is_err(), "the case this test is about");
    let marked = mark_redelivered(raw).expect("marked by re-encoding");
    let e = decode(&marked).expect("decodes");
    assert!(e.redelivered);
    assert_eq!(&e.content.body[..], b"x");
    assert_eq!(e.content.properties.headers.get("k"), Some(&crate::content::value::Value::Int(1)));
    assert_eq!(e.tag, "t");
}

#[test]
fn the_envelope_is_one_json_object_with_a_standard_base64_body() {
    for size in [0usize, 1, 2, 3, 4, 57, 4096] {
        let body: Vec<u8> = (0..size).map(|i| (i * 37 % 256) as u8).collect();
        let content = Content { properties: Properties::default(), body: Bytes::from(body.clone()) };
        let raw = encode(&content, "x", "k", "t");
        let doc: serde_json::Value = serde_json::from_slice(&raw).expect("one JSON document");
        let object = doc.as_object().expect("an object");
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        for key in ["body", "content-encoding", "content-type", "headers", "properties"] {
            assert!(keys.contains(&key), "{key} missing in {keys:?}");
        }
        let text = doc["body"].as_str().expect("body text");
        assert_eq!(text, base64::engine::general_purpose::STANDARD.encode(&body), "size {size}");
        assert_eq!(decode(&raw).expect("decodes").content.body, body);
    }
}

#[test]
fn a_body_without_padding_still_decodes() {
    let raw = br#"{"body": "eHk", "properties": {"body_encoding": "base64", "delivery_tag": "t"}}"#;
    assert_eq!(&decode(raw).expect("lenient").content.body[..], b"xy");
}

#[test]
fn a_record_holds_the_payload_as_it_stands_only_when_it_is_json_text() {
    let raw = encode(&content(), "x", "k", "t");
    assert!(is_json_text(&raw));
    let mut record = Vec::new();
    write_unacked_record(&mut record, &raw, "x\"y", "k").expect("written");
    let (payload, exchange, routing_key): (serde_json::Value, String, String) =
        serde_json::from_slice(&record).expect("[payload, exchange, routing_key]");
    assert_eq!(payload, serde_json::from_slice::<serde_json::Value>(&raw).unwrap());
    assert_eq!((exchange.as_str(), routing_key.as_str()), ("x\"y", "k"));
    // A field kelp skips is not checked for UTF-8: such an envelope
    // decodes but cannot go into a record as it stands.
    let odd = b"{\"body\": \"eA==\", \"odd\": \"\xff\", \"properties\": {\"body_encoding\": \"base64\", \"delivery_tag\": \"t\"}}";
    assert_eq!(&decode(odd).expect("decodes").content.body[..], b"x");
    assert!(!is_json_text(odd));
}

#[test]
fn garbage_is_a_decode_error() {
    for raw in [&b"not json"[..], b"{}", b"[1,2]", br#"{"properties": 3}"#,
        br#"{"body": "!!", "properties": {"body_encoding": "base64"}}"#] {
        let err = decode(raw).expect_err("must fail");
        assert_eq!(err.kind(), crate::error::ErrorKind::Decode, "{raw:?}");
    }
}
