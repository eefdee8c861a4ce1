//! Tests of the serializers, the accept lists and the registry, and of
//! interoperability against bodies written by the real Python Kombu
//! (`tests/fixtures/kombu`, made by `scripts/gen_kombu_fixtures.py`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::*;
use crate::content::value::FieldTable;
use crate::codec::compression::{Compression, DEFAULT_DECOMPRESSION_LIMIT};

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn json_text(v: &Value) -> String {
    String::from_utf8(Serializer::json().encode_value(v).unwrap().to_vec()).unwrap()
}

// ---------------------------------------------------------------------------
// JSON output format.

#[derive(Serialize)]
struct Hello {
    hello: &'static str,
    n: (u8, f64),
}

#[test]
fn json_looks_like_kombu_output() {
    let body = Serializer::json()
        .encode(&Hello {
            hello: "world",
            n: (1, 2.5),
        })
        .unwrap();
    // kombu.utils.json.dumps({'hello': 'world', 'n': [1, 2.5]})
    assert_eq!(&body[..], br#"{"hello": "world", "n": [1, 2.5]}"#);
    let empty: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    assert_eq!(&Serializer::json().encode(&empty).unwrap()[..], b"{}");
    assert_eq!(
        &Serializer::json().encode(&Vec::<u8>::new()).unwrap()[..],
        b"[]"
    );
    assert_eq!(&Serializer::json().encode(&Some(1.0)).unwrap()[..], b"1.0");
    assert_eq!(&Serializer::json().encode(&f64::NAN).unwrap()[..], b"null");
}

#[test]
fn json_ensure_ascii() {
    let s = "h\u{e9}llo \u{2603} \u{1F600} \u{7f}\n\"\\ \u{8}\u{c}\u{1f}/";
    let body = Serializer::json().encode(s).unwrap();
    // json.dumps of the same string in Python.
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#""h\u00e9llo \u2603 \ud83d\ude00 \u007f\n\"\\ \b\f\u001f/""#
    );
    let back: String = decode(Some("application/json"), None, &body).unwrap();
    assert_eq!(back, s);
}

#[test]
fn json_bytes_use_kombu_extensions() {
    let body = Serializer::json()
        .encode(&Bytes::from_static(b"caf\xc3\xa9 \"x\""))
        .unwrap();
    assert_eq!(
        &body[..],
        br#"{"__type__": "bytes", "__value__": "caf\u00e9 \"x\""}"#
    );
    let body = Serializer::json()
        .encode(&Bytes::from_static(b"\x00\xff"))
        .unwrap();
    assert_eq!(&body[..], br#"{"__type__": "base64", "__value__": "AP8="}"#);
    assert_eq!(
        decode_value(Some("application/json"), None, &body).unwrap(),
        Value::Bytes(Bytes::from_static(b"\x00\xff"))
    );
    let v: Vec<u8> = decode(Some("application/json"), None, &body).unwrap();
    assert_eq!(v, vec![0, 255]);
    let v: Bytes = decode(Some("application/json"), None, &body).unwrap();
    assert_eq!(&v[..], b"\x00\xff");
}

#[test]
fn json_extensions_decode_and_reencode() {
    let cases: Vec<(&str, Value)> = vec![
        (
            r#"{"__type__": "datetime", "__value__": "2024-01-02T03:04:05+00:00"}"#,
            Value::DateTime("2024-01-02T03:04:05+00:00".into()),
        ),
        (
            r#"{"__type__": "date", "__value__": "2024-01-02"}"#,
            Value::Date("2024-01-02".into()),
        ),
        (
            r#"{"__type__": "time", "__value__": "03:04:05.000006"}"#,
            Value::Time("03:04:05.000006".into()),
        ),
        (
            r#"{"__type__": "decimal", "__value__": "3.14159"}"#,
            Value::Decimal("3.14159".into()),
        ),
        (
            r#"{"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}}"#,
            Value::Uuid("12345678123456781234567812345678".into()),
        ),
        (
            r#"{"__type__": "bytes", "__value__": "hi"}"#,
            Value::Bytes(Bytes::from_static(b"hi")),
        ),
        (
            r#"{"__type__": "base64", "__value__": "AP8="}"#,
            Value::Bytes(Bytes::from_static(b"\x00\xff")),
        ),
    ];
    for (text, value) in cases {
        let decoded =
            decode_value(Some("application/json"), Some("utf-8"), text.as_bytes()).unwrap();
        assert_eq!(decoded, value, "{text}");
        assert_eq!(json_text(&value), text);
        // Nested inside containers too.
        let nested = format!(r#"{{"a": [{text}]}}"#);
        let decoded = decode_value(Some("application/json"), None, nested.as_bytes()).unwrap();
        assert_eq!(decoded, map(&[("a", Value::Array(vec![value.clone()]))]));
        assert_eq!(json_text(&decoded), nested);
    }
    // An AMQP timestamp goes out as an aware UTC datetime.
    assert_eq!(
        json_text(&Value::Timestamp(1_704_164_645)),
        r#"{"__type__": "datetime", "__value__": "2024-01-02T03:04:05+00:00"}"#
    );
    let err = Serializer::json()
        .encode_value(&Value::Timestamp(u64::MAX))
        .unwrap_err();
    assert!(err.is_encode(), "{err}");
    // Objects with other keys are plain maps.
    let plain = br#"{"__type__": "date", "__value__": "2024-01-02", "x": 1}"#;
    let v = decode_value(Some("application/json"), None, plain).unwrap();
    assert_eq!(v.get("__type__"), Some(&Value::from("date")));
    // The generic encode writes a Value's plain serde form.
    assert_eq!(
        &Serializer::json()
            .encode(&Value::Date("2024-01-02".into()))
            .unwrap()[..],
        br#""2024-01-02""#
    );
}

#[test]
fn json_unknown_or_bad_extension_is_a_decode_error() {
    let bodies: [&[u8]; 6] = [
        br#"{"__type__": "pickle", "__value__": "x"}"#,
        br#"{"a": [{"__type__": 5, "__value__": "x"}]}"#,
        br#"{"__type__": "datetime", "__value__": 5}"#,
        br#"{"__type__": "uuid", "__value__": {"hex": "123"}}"#,
        br#"{"__type__": "uuid", "__value__": "12345678123456781234567812345678"}"#,
        br#"{"__type__": "base64", "__value__": "A"}"#,
    ];
    for body in bodies {
        let err = decode_value(Some("application/json"), None, body).unwrap_err();
        assert!(err.is_decode(), "{err}");
        let err = decode::<Value>(Some("application/json"), None, body).unwrap_err();
        assert!(err.is_decode(), "{err}");
    }
    let err = decode_value(Some("application/json"), None, bodies[0]).unwrap_err();
    assert!(err.to_string().contains("pickle"), "{err}");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Typed {
    id: u32,
    name: String,
    tags: Vec<String>,
    score: f64,
    note: Option<String>,
    blob: Bytes,
    kind: Kind,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Retail,
    Bulk { pallets: u8 },
}

fn typed() -> Typed {
    Typed {
        id: 7,
        name: "h\u{e9}llo \u{1F600}".into(),
        tags: vec!["a".into(), "yes".into(), "1e5".into()],
        score: 0.1,
        note: None,
        blob: Bytes::from_static(b"\x00\x01\xff"),
        kind: Kind::Bulk { pallets: 3 },
    }
}

#[test]
fn typed_round_trip_for_every_serializer() {
    for ser in [
        Serializer::json(),
        Serializer::msgpack(),
        Serializer::yaml(),
    ] {
        let body = ser.encode(&typed()).unwrap();
        let back: Typed = decode(
            Some(ser.content_type()),
            Some(ser.content_encoding()),
            &body,
        )
        .unwrap();
        assert_eq!(back, typed(), "{ser:?}");
        let mut other = typed();
        other.kind = Kind::Retail;
        other.note = Some("n".into());
        let body = ser.encode(&other).unwrap();
        let back: Typed = decode(
            Some(ser.content_type()),
            Some(ser.content_encoding()),
            &body,
        )
        .unwrap();
        assert_eq!(back, other, "{ser:?}");
    }
}

#[test]
fn value_round_trip_for_every_serializer() {
    let value = map(&[
        ("s", Value::from("h\u{e9}llo \u{1F600}")),
        ("i", Value::Int(-5)),
        ("u", Value::UInt(u64::MAX)),
        ("f", Value::Float(2.5)),
        ("b", Value::Bool(true)),
        ("n", Value::Null),
        ("bytes", Value::Bytes(Bytes::from_static(b"\x00\xff"))),
        (
            "list",
            Value::Array(vec![Value::Int(1), Value::from("yes"), Value::from("0o17")]),
        ),
        ("map", map(&[("k", Value::from("v"))])),
        ("empty", Value::Map(FieldTable::new())),
    ]);
    for ser in [
        Serializer::json(),
        Serializer::msgpack(),
        Serializer::yaml(),
    ] {
        let body = ser.encode_value(&value).unwrap();
        let back = decode_value(
            Some(ser.content_type()),
            Some(ser.content_encoding()),
            &body,
        )
        .unwrap();
        assert_eq!(back, value, "{ser:?}: {}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn typed_decode_replaces_extensions_by_plain_forms() {
    #[derive(Deserialize)]
    struct Ext {
        when: String,
        id: String,
        price: String,
        text: String,
        raw: Vec<u8>,
        buf: Bytes,
        plain: String,
    }
    let body = br#"{"when": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05"},
        "id": {"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}},
        "price": {"__type__": "decimal", "__value__": "1.10"},
        "text": {"__type__": "bytes", "__value__": "caf\u00e9"},
        "raw": {"__type__": "base64", "__value__": "AP8="},
        "buf": {"__type__": "bytes", "__value__": "xy"},
        "plain": "__type__"}"#;
    let ext: Ext = decode(Some("application/json"), None, body).unwrap();
    assert_eq!(ext.when, "2024-01-02T03:04:05");
    assert_eq!(ext.id, "12345678-1234-5678-1234-567812345678");
    assert_eq!(ext.price, "1.10");
    assert_eq!(ext.text, "caf\u{e9}");
    assert_eq!(ext.raw, vec![0, 255]);
    assert_eq!(&ext.buf[..], b"xy");
    assert_eq!(ext.plain, "__type__");
}

#[test]
fn malformed_bodies_are_decode_errors() {
    let cases: [(&str, &[u8]); 6] = [
        ("application/json", b"{\"a\": "),
        ("application/json", b"\xff\xfe"),
        ("application/json", b"NaN"),
        ("application/x-msgpack", b"\x92\x01"),
        ("application/x-yaml", b"a: [1\n"),
        ("application/x-yaml", b"- 1\n---\n- 2\n"),
    ];
    for (ct, body) in cases {
        let err = decode_value(Some(ct), None, body).unwrap_err();
        assert!(err.is_decode(), "{ct}: {err}");
        let err = decode::<Value>(Some(ct), None, body).unwrap_err();
        assert!(err.is_decode(), "{ct}: {err}");
    }
    // Wrong shape for the type.
    let err = decode::<Typed>(Some("application/json"), None, b"[1, 2]").unwrap_err();
    assert!(err.is_decode(), "{err}");
    // msgpack: trailing bytes, as Python's unpackb refuses them.
    let mut body = Serializer::msgpack().encode(&1u8).unwrap().to_vec();
    body.push(0xc0);
    let err = decode_value(Some("application/x-msgpack"), None, &body).unwrap_err();
    assert!(err.to_string().contains("1 bytes after the value"), "{err}");
    // A huge announced length with no data behind it.
    let err = decode_value(
        Some("application/x-msgpack"),
        None,
        b"\xdd\xff\xff\xff\xff\x01",
    )
    .unwrap_err();
    assert!(err.is_decode(), "{err}");
    let err = decode_value(
        Some("application/x-msgpack"),
        None,
        b"\xc6\xff\xff\xff\xff\x01",
    )
    .unwrap_err();
    assert!(err.is_decode(), "{err}");
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let depth = 100_000;
    let json = [vec![b'['; depth], vec![b']'; depth]].concat();
    assert!(
        decode_value(Some("application/json"), None, &json)
            .unwrap_err()
            .is_decode()
    );
    assert!(
        decode::<Value>(Some("application/json"), None, &json)
            .unwrap_err()
            .is_decode()
    );
    let mut msgpack = vec![0x91u8; depth];
    msgpack.push(0xc0);
    assert!(
        decode_value(Some("application/x-msgpack"), None, &msgpack)
            .unwrap_err()
            .is_decode()
    );
    let yaml = [vec![b'['; depth], vec![b']'; depth]].concat();
    assert!(
        decode_value(Some("application/x-yaml"), None, &yaml)
            .unwrap_err()
            .is_decode()
    );
}

// ---------------------------------------------------------------------------
// raw, text, no decoder, empty bodies.

#[test]
fn raw_and_text_encode() {
    let raw = Serializer::raw();
    assert_eq!(
        &raw.encode(&Bytes::from_static(b"\x00\xff")).unwrap()[..],
        b"\x00\xff"
    );
    assert_eq!(&raw.encode(&b"\x00\xff"[..]).unwrap()[..], b"\x00\xff");
    assert_eq!(&raw.encode(&vec![1u8, 2]).unwrap()[..], b"\x01\x02");
    assert_eq!(&raw.encode("h\u{e9}").unwrap()[..], "h\u{e9}".as_bytes());
    assert_eq!(&raw.encode(&String::from("s")).unwrap()[..], b"s");
    for err in [
        raw.encode(&42).unwrap_err(),
        raw.encode(&vec![1u32]).unwrap_err(),
        raw.encode(&typed()).unwrap_err(),
        raw.encode(&None::<String>).unwrap_err(),
    ] {
        assert!(err.is_encode(), "{err}");
        assert!(err.to_string().contains("raw serializer"), "{err}");
    }
    let text = Serializer::text();
    assert_eq!(&text.encode("h\u{e9}").unwrap()[..], "h\u{e9}".as_bytes());
    assert_eq!(&text.encode(&'x').unwrap()[..], b"x");
    for err in [
        text.encode(&5).unwrap_err(),
        text.encode(&vec![1u8]).unwrap_err(),
        text.encode(&Bytes::from_static(b"\xff")).unwrap_err(),
    ] {
        assert!(err.is_encode(), "{err}");
    }
}

#[test]
fn raw_and_text_decode() {
    let s: String = decode(Some("text/plain"), Some("utf-8"), "h\u{e9}".as_bytes()).unwrap();
    assert_eq!(s, "h\u{e9}");
    let v: Vec<u8> = decode(Some("application/data"), Some("binary"), b"\x00\xff").unwrap();
    assert_eq!(v, vec![0, 255]);
    let b: Bytes = decode(Some("application/data"), Some("binary"), b"\x00\xff").unwrap();
    assert_eq!(&b[..], b"\x00\xff");
    let s: String = decode(Some("application/data"), Some("binary"), b"abc").unwrap();
    assert_eq!(s, "abc");
    assert!(
        decode::<String>(Some("application/data"), Some("binary"), b"\xff")
            .unwrap_err()
            .is_decode()
    );
    let v: Vec<u8> = decode(Some("text/plain"), Some("utf-8"), b"ab").unwrap();
    assert_eq!(v, b"ab");
    let v: Vec<u8> = decode(Some("text/plain"), Some("latin-1"), b"\xe9").unwrap();
    assert_eq!(v, "\u{e9}".as_bytes());

    assert_eq!(
        decode_value(Some("text/plain"), Some("utf-8"), b"hi").unwrap(),
        Value::from("hi")
    );
    assert_eq!(
        decode_value(Some("application/data"), Some("binary"), b"\x00").unwrap(),
        Value::Bytes(Bytes::from_static(b"\x00"))
    );
    // Missing content type is application/data, missing encoding utf-8.
    assert_eq!(
        decode_value(None, None, b"abc").unwrap(),
        Value::from("abc")
    );
    assert_eq!(
        decode_value(Some(""), Some("ASCII-8BIT"), b"a").unwrap(),
        Value::Bytes(Bytes::from_static(b"a"))
    );
    assert_eq!(
        decode_value(Some("text/plain"), Some("latin-1"), b"caf\xe9").unwrap(),
        Value::from("caf\u{e9}")
    );
    assert!(
        decode_value(Some("text/plain"), Some("utf-8"), b"\xff")
            .unwrap_err()
            .is_decode()
    );
    assert!(
        decode_value(Some("text/plain"), Some("ascii"), b"\xc3\xa9")
            .unwrap_err()
            .is_decode()
    );
    let err = decode_value(Some("text/plain"), Some("utf-16"), b"ab").unwrap_err();
    assert!(
        err.is_decode() && err.to_string().contains("utf-16"),
        "{err}"
    );
    // A content type kelp has no decoder for: the bytes, as Kombu returns them.
    assert_eq!(
        decode_value(
            Some("application/x-python-serialize"),
            Some("binary"),
            b"\x80\x04"
        )
        .unwrap(),
        Value::Bytes(Bytes::from_static(b"\x80\x04"))
    );
}

#[test]
fn empty_bodies_are_returned_as_they_are() {
    #[derive(Debug, Deserialize)]
    struct S {
        _a: u8,
    }
    for ct in [
        "application/json",
        "application/x-msgpack",
        "application/x-yaml",
        "text/plain",
    ] {
        assert_eq!(
            decode_value(Some(ct), None, b"").unwrap(),
            Value::Bytes(Bytes::new()),
            "{ct}"
        );
        assert_eq!(decode::<String>(Some(ct), None, b"").unwrap(), "");
        assert_eq!(
            decode::<Vec<u8>>(Some(ct), None, b"").unwrap(),
            Vec::<u8>::new()
        );
        assert!(decode::<Option<S>>(Some(ct), None, b"").unwrap().is_none());
        decode::<()>(Some(ct), None, b"").unwrap();
        assert!(decode::<S>(Some(ct), None, b"").unwrap_err().is_decode());
    }
}

// ---------------------------------------------------------------------------
// Names, accept lists, registry.

#[test]
fn builtin_names_and_content_types() {
    let table = [
        (Serializer::json(), "json", "application/json", "utf-8"),
        (
            Serializer::msgpack(),
            "msgpack",
            "application/x-msgpack",
            "binary",
        ),
        (Serializer::yaml(), "yaml", "application/x-yaml", "utf-8"),
        (Serializer::raw(), "raw", "application/data", "binary"),
        (Serializer::text(), "text", "text/plain", "utf-8"),
    ];
    for (ser, name, ct, enc) in table {
        assert_eq!(
            (ser.name(), ser.content_type(), ser.content_encoding()),
            (name, ct, enc)
        );
        assert_eq!(Serializer::from_name(name).unwrap().name(), name);
        assert_eq!(Serializer::from_name(ct).unwrap().name(), name);
        assert_eq!(
            Serializer::from_name(&name.to_uppercase()).unwrap().name(),
            name
        );
        assert_eq!(format!("{ser:?}"), name);
    }
    assert_eq!(Serializer::default().name(), "json");
    assert_eq!(
        Serializer::from_name("application/json; charset=utf-8")
            .unwrap()
            .name(),
        "json"
    );
    let err = Serializer::from_name("pickle").unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("\"pickle\""), "{err}");
    assert!(
        err.to_string().contains("json, msgpack, yaml, raw, text"),
        "{err}"
    );
}

#[test]
fn accept_lists() {
    let accept = Accept::new(["json"]).unwrap();
    assert!(accept.allows(Some("application/json")));
    assert!(accept.allows(Some("Application/JSON; charset=utf-8")));
    assert!(!accept.allows(Some("application/x-yaml")));
    assert!(!accept.allows(Some("text/plain")));
    // Trusted whatever the list says.
    assert!(accept.allows(None));
    assert!(accept.allows(Some("application/data")));
    assert!(accept.allows(Some("application/text")));
    let err = accept.check(Some("application/x-yaml")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContentDisallowed);
    assert_eq!(
        err.message(),
        "Refusing to deserialize untrusted content of type yaml (application/x-yaml)"
    );
    let err = accept.check(Some("application/x-foo")).unwrap_err();
    assert_eq!(
        err.message(),
        "Refusing to deserialize untrusted content of type application/x-foo"
    );
    accept.check(Some("application/json")).unwrap();

    let accept = Accept::new(["application/x-yaml", "msgpack", "pickle"]).unwrap();
    assert!(accept.allows(Some("application/x-yaml")));
    assert!(accept.allows(Some("application/x-msgpack")));
    assert!(accept.allows(Some("application/x-python-serialize")));
    assert!(!accept.allows(Some("application/json")));
    assert_eq!(
        accept.content_types().unwrap().collect::<Vec<_>>(),
        [
            "application/x-yaml",
            "application/x-msgpack",
            "application/x-python-serialize"
        ]
    );

    let err = Accept::new(["json", "nope"]).unwrap_err();
    assert!(err.is_config() && err.to_string().contains("nope"), "{err}");

    let all = Accept::default();
    assert!(all.content_types().is_none());
    for ct in [
        "application/json",
        "application/x-msgpack",
        "application/x-yaml",
        "text/plain",
        "application/data",
    ] {
        assert!(all.allows(Some(ct)), "{ct}");
    }
    assert!(!all.allows(Some("application/x-python-serialize")));
    assert!(Accept::new(Vec::<String>::new()).unwrap().allows(None));
    assert!(
        !Accept::new(Vec::<String>::new())
            .unwrap()
            .allows(Some("application/json"))
    );
}

/// A test codec: JSON without extensions, under its own content type.
struct PlainJson;

impl Codec for PlainJson {
    fn encode(&self, value: &Value) -> Result<Bytes> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| Error::encode(e.to_string()))
    }
    fn decode(&self, body: &[u8]) -> Result<Value> {
        serde_json::from_slice(body).map_err(|e| Error::decode(e.to_string()))
    }
}

#[test]
fn custom_serializer_lifecycle() {
    let (name, ct) = ("kelp-test-plain", "application/x-kelp-test-plain");
    assert!(Serializer::from_name(name).unwrap_err().is_config());
    assert!(!Accept::all().allows(Some(ct)));

    register(name, ct, "utf-8", Arc::new(PlainJson)).unwrap();
    let ser = Serializer::from_name(name).unwrap();
    assert_eq!(
        (ser.name(), ser.content_type(), ser.content_encoding()),
        (name, ct, "utf-8")
    );
    assert_eq!(Serializer::from_name(ct).unwrap().name(), name);
    assert!(Accept::all().allows(Some(ct)));
    let accept = Accept::new([name]).unwrap();
    assert!(accept.allows(Some(ct)));
    assert_eq!(
        Accept::new(["json"])
            .unwrap()
            .check(Some(ct))
            .unwrap_err()
            .message(),
        format!("Refusing to deserialize untrusted content of type {name} ({ct})")
    );

    let body = ser.encode(&typed()).unwrap();
    let back: Typed = decode(Some(ct), None, &body).unwrap();
    assert_eq!(back.name, typed().name);
    let value = decode_value(Some(ct), None, &body).unwrap();
    assert_eq!(value.get("id"), Some(&Value::Int(7)));
    assert_eq!(ser.encode_value(&value).unwrap(), body);

    // Re-registering the same name replaces it; another name on the same
    // content type is refused.
    register(name, ct, "utf-8", Arc::new(PlainJson)).unwrap();
    assert!(
        register("kelp-test-other", ct, "utf-8", Arc::new(PlainJson))
            .unwrap_err()
            .is_config()
    );

    unregister(name).unwrap();
    assert!(Serializer::from_name(name).unwrap_err().is_config());
    assert!(!Accept::all().allows(Some(ct)));
    // Without a decoder the body is its text.
    assert_eq!(
        decode_value(Some(ct), Some("utf-8"), b"{}").unwrap(),
        Value::from("{}")
    );
    // A resolved serializer keeps working.
    assert_eq!(ser.encode(&1).unwrap(), Bytes::from_static(b"1"));
    assert!(unregister(name).unwrap_err().is_config());
}

#[test]
fn registry_refuses_conflicts_with_builtins() {
    let codec: Arc<dyn Codec> = Arc::new(PlainJson);
    for (name, ct) in [
        ("json", "application/x-kelp-other"),
        ("YAML", "application/x-kelp-other"),
        ("kelp-x", "application/json"),
        ("kelp-x", "text/plain"),
        ("kelp/x", "application/x-kelp-x"),
        ("", "application/x-kelp-x"),
        ("kelp-x", "nonsense"),
        ("kelp-x", "application/x-kelp-x; charset=utf-8"),
    ] {
        let err = register(name, ct, "utf-8", Arc::clone(&codec)).unwrap_err();
        assert!(err.is_config(), "{name} {ct}: {err}");
    }
    assert!(unregister("json").unwrap_err().is_config());
    assert!(unregister("kelp-never-registered").unwrap_err().is_config());
}

// ---------------------------------------------------------------------------
// Golden fixtures written by Python's Kombu.

macro_rules! fixture_files {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kombu/", $file)) as &[u8])),*]
    };
}

const FIXTURE_FILES: &[(&str, &[u8])] = fixture_files![
    "json_basic.bin",
    "msgpack_basic.bin",
    "yaml_basic.bin",
    "msgpack_binary.bin",
    "yaml_binary.bin",
    "json_binary.bin",
    "json_extensions.bin",
    "text_str.bin",
    "raw_bytes.bin",
    "raw_str.bin",
    "compressed_gzip.bin",
    "compressed_bz2.bin",
    "compressed_brotli.bin",
    "compressed_lzma.bin",
    "compressed_zstd.bin",
];

const MANIFEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/kombu/manifest.json"
));

#[derive(Deserialize)]
struct Manifest {
    fixtures: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    name: String,
    file: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    compression: Option<String>,
    expected: serde_json::Value,
}

impl Fixture {
    fn body(&self) -> &'static [u8] {
        FIXTURE_FILES
            .iter()
            .find(|(f, _)| *f == self.file)
            .map(|(_, b)| *b)
            .unwrap_or_else(|| panic!("{} is not in FIXTURE_FILES", self.file))
    }
}

fn manifest() -> Manifest {
    serde_json::from_str(MANIFEST).unwrap()
}

/// The manifest's notation for Python values: JSON, with the non-JSON
/// types as one-key objects `{"$bytes": hex}`, `{"$datetime": iso}`...
fn expected_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::Float(n.as_f64().unwrap()),
        },
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::Array(items.iter().map(expected_value).collect()),
        J::Object(m) => {
            if m.len() == 1 {
                let (k, inner) = m.iter().next().unwrap();
                let text = inner.as_str().map(str::to_owned);
                match (k.as_str(), text) {
                    ("$bytes", Some(hex)) => {
                        let bytes = (0..hex.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                            .collect::<Vec<u8>>();
                        return Value::Bytes(Bytes::from(bytes));
                    }
                    ("$datetime", Some(s)) => return Value::DateTime(s),
                    ("$date", Some(s)) => return Value::Date(s),
                    ("$time", Some(s)) => return Value::Time(s),
                    ("$decimal", Some(s)) => return Value::Decimal(s),
                    ("$uuid", Some(s)) => return Value::Uuid(s),
                    _ => {}
                }
            }
            Value::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), expected_value(v)))
                    .collect(),
            )
        }
    }
}

#[test]
fn every_fixture_file_is_in_the_manifest() {
    let m = manifest();
    assert_eq!(m.fixtures.len(), FIXTURE_FILES.len());
    for (file, _) in FIXTURE_FILES {
        assert!(m.fixtures.iter().any(|f| f.file == *file), "{file}");
    }
}

#[test]
fn kombu_fixtures_decode_exactly() {
    for f in manifest().fixtures {
        let ct = f.content_type.as_deref();
        let enc = f.content_encoding.as_deref();
        let mut body = Bytes::from_static(f.body());
        if let Some(c) = &f.compression {
            body = Compression::from_name(c)
                .unwrap()
                .decompress(&body, DEFAULT_DECOMPRESSION_LIMIT)
                .unwrap();
        }
        Accept::all().check(ct).unwrap();
        let got = decode_value(ct, enc, &body).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(got, expected_value(&f.expected), "{}", f.name);
    }
}

#[test]
fn kelp_output_of_fixture_payloads_decodes_back() {
    for f in manifest().fixtures {
        let expected = expected_value(&f.expected);
        let ser = Serializer::from_name(f.content_type.as_deref().unwrap()).unwrap();
        let body = match ser.name() {
            "raw" | "text" => match &expected {
                Value::Bytes(b) => ser.encode(b).unwrap(),
                Value::String(s) => ser.encode(s).unwrap(),
                other => panic!("{}: {other}", f.name),
            },
            _ => ser.encode_value(&expected).unwrap(),
        };
        if let Some(c) = &f.compression {
            let method = Compression::from_name(c).unwrap();
            let wire = method.compress(&body).unwrap();
            assert_eq!(
                method.decompress(&wire, body.len()).unwrap(),
                body,
                "{}",
                f.name
            );
        }
        let enc = match (&expected, ser.name()) {
            (Value::String(_), "raw") => "utf-8",
            _ => ser.content_encoding(),
        };
        let back = decode_value(Some(ser.content_type()), Some(enc), &body).unwrap();
        assert_eq!(
            back,
            expected,
            "{}: {}",
            f.name,
            String::from_utf8_lossy(&body)
        );
    }
}

/// The same payload as `BASIC` in the generator, as a Rust type with the
/// fields in Python's order: kelp's JSON must be byte-identical to Kombu's.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Basic {
    name: String,
    unicode: String,
    int: i64,
    negative: i64,
    big: u64,
    float: f64,
    small: f64,
    large: f64,
    #[serde(rename = "true")]
    yes: bool,
    #[serde(rename = "false")]
    no: bool,
    none: Option<i64>,
    list: Value,
    nested: Value,
    empty_list: Vec<u8>,
    empty_map: BTreeMap<String, u8>,
    special: String,
    tricky: Vec<String>,
}

#[test]
fn kelp_json_is_byte_identical_to_kombu() {
    let m = manifest();
    let f = m.fixtures.iter().find(|f| f.name == "json_basic").unwrap();
    let basic: Basic = decode(Some("application/json"), None, f.body()).unwrap();
    let ours = Serializer::json().encode(&basic).unwrap();
    assert_eq!(
        std::str::from_utf8(&ours).unwrap(),
        std::str::from_utf8(f.body()).unwrap()
    );
    // The same struct through msgpack and yaml decodes from Kombu's bodies.
    for name in ["msgpack_basic", "yaml_basic"] {
        let f = m.fixtures.iter().find(|f| f.name == name).unwrap();
        let other: Basic = decode(
            f.content_type.as_deref(),
            f.content_encoding.as_deref(),
            f.body(),
        )
        .unwrap();
        assert_eq!(other, basic, "{name}");
    }
    // And each extension object kelp writes appears verbatim in Kombu's body.
    let f = m
        .fixtures
        .iter()
        .find(|f| f.name == "json_extensions")
        .unwrap();
    let kombu = std::str::from_utf8(f.body()).unwrap();
    let Value::Map(values) = expected_value(&f.expected) else {
        panic!()
    };
    for (key, value) in values {
        let one = json_text(&map(&[(key.as_str(), value)]));
        let inner = &one[1..one.len() - 1];
        assert!(kombu.contains(inner), "{inner} not in {kombu}");
    }
}

#[test]
fn kombu_extensions_into_typed_struct() {
    #[derive(Deserialize)]
    struct Ext {
        aware: String,
        naive: String,
        day: String,
        clock: String,
        price: String,
        id: String,
        utf8: String,
        raw: Vec<u8>,
        list: Vec<String>,
    }
    let m = manifest();
    let f = m
        .fixtures
        .iter()
        .find(|f| f.name == "json_extensions")
        .unwrap();
    let ext: Ext = decode(Some("application/json"), Some("utf-8"), f.body()).unwrap();
    assert_eq!(ext.aware, "2024-01-02T03:04:05+00:00");
    assert_eq!(ext.naive, "2024-01-02T03:04:05.678901");
    assert_eq!(ext.day, "2024-01-02");
    assert_eq!(ext.clock, "03:04:05.000006");
    assert_eq!(ext.price, "3.14159");
    assert_eq!(ext.id, "12345678-1234-5678-1234-567812345678");
    assert_eq!(ext.utf8, "caf\u{e9}");
    assert_eq!(ext.raw, vec![0, 255, 254]);
    assert_eq!(ext.list, ["1.10", "1999-12-31"]);
}

#[test]
fn typed_yaml_reads_plain_scalars_as_python_does() {
    let body = b"- y\n- 1e5\n- 0o17\n- yes\n- '017'\n";
    let got: Vec<String> = decode(Some("application/x-yaml"), None, &body[..9]).unwrap();
    assert_eq!(got, ["y", "1e5"]);
    let err = decode::<Vec<bool>>(Some("application/x-yaml"), None, b"- y\n").unwrap_err();
    assert!(err.is_decode(), "{err}");
    let got: Vec<Value> = decode(Some("application/x-yaml"), None, body).unwrap();
    assert_eq!(
        got,
        [
            Value::from("y"),
            Value::from("1e5"),
            Value::from("0o17"),
            Value::Bool(true),
            Value::from("017")
        ]
    );
}
