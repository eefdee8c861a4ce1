//! Tests of `yaml`.

use super::*;

#[test]
fn pyyaml_resolution_rules() {
    for t in [
        "0",
        "42",
        "-7",
        "+3",
        "017",
        "0b101",
        "0x1F",
        "1_000",
        "1:30",
        "190:20:30",
    ] {
        assert!(is_py_int(t), "{t}");
    }
    for t in ["0o17", "1e5", "08", "0x", "1:60", "", "-", "1.0"] {
        assert!(!is_py_int(t), "{t}");
    }
    for t in [
        "1.0", "2.5", "-0.5", "1.0e+16", "1.5e-07", ".5", "1.", "1_0.5", ".inf", "-.inf",
        ".nan", "1:30.5",
    ] {
        assert!(is_py_float(t), "{t}");
    }
    for t in [
        "1e5",
        "1.5e5",
        "1E10",
        "-.5",
        "inf",
        "nan",
        "1",
        ".",
        "1:30.5e+1",
        "1.0e+",
    ] {
        assert!(!is_py_float(t), "{t}");
    }
    for t in ["yes", "No", "ON", "off", "true", "FALSE"] {
        assert!(is_py_bool(t), "{t}");
    }
    for t in ["y", "n", "yEs", "tRUE", "1"] {
        assert!(!is_py_bool(t), "{t}");
    }
}

#[test]
fn plain_scalars_read_as_python_does() {
    let doc = b"a: 1e5\nb: 0o17\nc: y\nd: yes\ne: 1.0e+16\nf: 017\ng: [1.5e5, 3, n]\n1e5: k\nh: !!binary |\n  AP8=\ni: .inf\nj: ~\n";
    let v = decode_value(doc).unwrap();
    assert_eq!(v.get("a"), Some(&Value::from("1e5")));
    assert_eq!(v.get("b"), Some(&Value::from("0o17")));
    assert_eq!(v.get("c"), Some(&Value::from("y")));
    assert_eq!(v.get("d"), Some(&Value::Bool(true)));
    assert_eq!(v.get("e"), Some(&Value::Float(1e16)));
    assert_eq!(v.get("f"), Some(&Value::Int(15)));
    assert_eq!(
        v.get("g"),
        Some(&Value::Array(vec![
            Value::from("1.5e5"),
            Value::Int(3),
            Value::from("n")
        ]))
    );
    assert_eq!(v.get("1e5"), Some(&Value::from("k")));
    assert_eq!(
        v.get("h"),
        Some(&Value::Bytes(Bytes::from_static(b"\x00\xff")))
    );
    assert_eq!(v.get("i"), Some(&Value::Float(f64::INFINITY)));
    assert_eq!(v.get("j"), Some(&Value::Null));
}
