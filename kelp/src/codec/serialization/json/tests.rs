//! Tests of `json`.

use super::*;

fn py_float(v: f64) -> String {
    let mut out = Vec::new();
    write_py_float(&mut out, v).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn floats_match_python_repr() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (2.5, "2.5"),
        (-2.5, "-2.5"),
        (100.0, "100.0"),
        (0.1, "0.1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e15, "1000000000000000.0"),
        (9999999999999998.0, "9999999999999998.0"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (1e22, "1e+22"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (123456.789, "123456.789"),
        (1.0 / 3.0, "0.3333333333333333"),
        // An exact tie in the 17th digit: Python rounds half to even.
        (1658206780088562.2, "1658206780088562.2"),
    ];
    for &(v, want) in cases {
        assert_eq!(py_float(v), want, "{v:e}");
    }
    let mut out = Vec::new();
    write_py_float(&mut out, 0.1f32).unwrap();
    assert_eq!(out, b"0.1");
}

/// serde_json's digits are as short as Rust's own shortest round-trip
/// formatting and parse back exactly. (Their last digit may differ on
/// exact ties, where serde_json rounds half to even like Python's repr;
/// that was checked against Python by hand.)
#[test]
fn float_digits_are_shortest_and_exact() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..200_000u32 {
        // xorshift over all bit patterns, plus some round numbers.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = if i % 4 == 0 {
            f64::from(i) * 10f64.powi((i % 40) as i32 - 20)
        } else {
            f64::from_bits(x)
        };
        if !v.is_finite() {
            continue;
        }
        let ours = py_float(v);
        assert_eq!(
            ours.parse::<f64>().unwrap().to_bits(),
            v.to_bits(),
            "{ours}"
        );
        let std_text = format!("{v:e}");
        let (n1, d1, p1) = parse_float_text(std_text.as_bytes()).unwrap();
        let (n2, d2, p2) = parse_float_text(ours.as_bytes()).unwrap();
        assert_eq!(
            (n1, d1.as_bytes().len()),
            (n2, d2.as_bytes().len()),
            "{v:e} vs {ours}"
        );
        if !d1.as_bytes().is_empty() {
            assert_eq!(p1, p2, "{v:e} vs {ours}");
        }
    }
}

#[test]
fn timestamps_are_python_isoformat() {
    assert_eq!(timestamp_isoformat(0).unwrap(), "1970-01-01T00:00:00+00:00");
    assert_eq!(
        timestamp_isoformat(1_704_164_645).unwrap(),
        "2024-01-02T03:04:05+00:00"
    );
    // Leap day and the last representable second.
    assert_eq!(
        timestamp_isoformat(951_782_400).unwrap(),
        "2000-02-29T00:00:00+00:00"
    );
    assert_eq!(
        timestamp_isoformat(253_402_300_799).unwrap(),
        "9999-12-31T23:59:59+00:00"
    );
    assert!(timestamp_isoformat(253_402_300_800).is_err());
    assert!(timestamp_isoformat(u64::MAX).is_err());
    // Cross-check the calendar over a wide range against a day counter.
    let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
    for days in 0..200_000u64 {
        assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][(m - 1) as usize];
        d += 1;
        if d > len {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
}

#[test]
fn marker_search() {
    assert!(may_have_extensions(br#"{"__type__": "x"}"#));
    assert!(!may_have_extensions(br#"{"_type_": "__type_"}"#));
    assert!(may_have_extensions(b"____type__"));
    assert!(!may_have_extensions(b""));
    assert!(!may_have_extensions(b"__type_"));
}

#[test]
fn uuid_spellings() {
    let want = "12345678123456781234567812345678";
    for s in [
        want,
        "12345678-1234-5678-1234-567812345678",
        "{12345678-1234-5678-1234-567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678".to_uppercase().as_str(),
    ] {
        assert_eq!(normalize_uuid(s).as_deref(), Some(want), "{s}");
    }
    assert_eq!(normalize_uuid("1234"), None);
    assert_eq!(normalize_uuid("g2345678123456781234567812345678"), None);
    assert_eq!(hyphenate_uuid(want), "12345678-1234-5678-1234-567812345678");
    assert_eq!(hyphenate_uuid("not a uuid"), "not a uuid");
}
