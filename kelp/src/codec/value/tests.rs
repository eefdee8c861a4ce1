//! Tests of `value`.

use super::*;
use serde::Deserialize;

#[derive(Debug, PartialEq, serde::Serialize, Deserialize)]
struct Order {
    id: u32,
    items: Vec<String>,
    note: Option<String>,
    kind: Kind,
}

#[derive(Debug, PartialEq, serde::Serialize, Deserialize)]
enum Kind {
    Retail,
    Bulk { pallets: u8 },
}

#[test]
fn typed_values_round_trip_through_value() {
    for kind in [Kind::Retail, Kind::Bulk { pallets: 3 }] {
        let order = Order {
            id: 7,
            items: vec!["a".into(), "b".into()],
            note: None,
            kind,
        };
        let value = Value::from_serialize(&order).unwrap();
        assert_eq!(value.get("id"), Some(&Value::Int(7)));
        assert_eq!(value.get("note"), Some(&Value::Null));
        let back: Order = value.deserialize_into().unwrap();
        assert_eq!(back, order);
    }
}

#[test]
fn bytes_become_vec_u8_and_large_unsigned_stays_exact() {
    let v: Vec<u8> = Value::Bytes(Bytes::from_static(b"\x00\xff")).deserialize_into().unwrap();
    assert_eq!(v, vec![0, 255]);
    assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
    assert_eq!(Value::from(5u64), Value::Int(5));
    let back: u64 = Value::UInt(u64::MAX).deserialize_into().unwrap();
    assert_eq!(back, u64::MAX);
}

#[test]
fn wrong_shape_is_a_decode_error_not_a_panic() {
    let err = Value::from("x").deserialize_into::<u32>().unwrap_err();
    assert!(err.is_decode(), "{err}");
}
